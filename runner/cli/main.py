"""``python -m runner``: fetch the data, execute stage notebooks, predict with a model,
promote a registered model version to champion, serve a model over HTTP, serve the review
page (``app``).

Stage commands take parameters as papermill does: ``-p NAME VALUE`` (typed by papermill's
rules: True/False/None, ints, floats, else a string), ``-r NAME VALUE`` (always a string),
``-y YAML`` and ``-f FILE.yml`` (for lists and named setups under ``conf/``). Later options
override earlier ones.

Exit status: 0 done; 2 bad input, or a fault of the machine that the user can act on (a
read-only or full output location, a damaged data set or model: one line on stderr names the
problem and the fix); 1 an execution that failed (its error line, then the traceback); 141
stdout closed by its reader (``runner status | head``: quietly); 130 interrupted (Ctrl-C); 143
terminated (SIGTERM: a stopped Polyaxon job, ``docker stop``), which is handled as Ctrl-C is:
the running notebook's kernel is interrupted (a tune stops and records its trials), its
notebook is logged to its MLflow run, which ends KILLED, and every kernel is shut down; a
second signal, or a stop that takes longer than 25 s, stops it at once
(``runner.execution.stopping``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from lib.core import gcs, paths
from lib.core.errors import ParameterError, StorageError, UserError, first_line
from lib.core.secrets import check_parameter_names, mask_text, secret_values
from lib.tracking.model_io import predict_texts
from lib.tracking.store_check import move_uri_credentials
from runner.cli import app as app_cli
from runner.cli import closed_pipe, compare, promote, serve
from runner.cli import pipeline as pipeline_cli
from runner.cli.options import add_parameter_options, collect_parameters
from runner.execution import stopping
from runner.execution.console import add_console_options, configure_console
from runner.execution.run_stage import print_error, run_stage
from runner.stages import COMPARE, STAGES, Stage, get_stage

log = logging.getLogger("runner")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like any other bad input (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _add_param_options(p: argparse.ArgumentParser) -> None:
    add_parameter_options(p)
    p.add_argument(
        "--output-dir",
        default=None,  # a string: gs://BUCKET/x would not survive pathlib
        help="run folder for the executed notebook, or gs://BUCKET/PATH to upload it there "
        "(default runs/<UTC time>-<stage>/)",
    )
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    p.add_argument("--log-output", action="store_true", help="stream cell outputs to the log")
    p.add_argument("--no-html", action="store_true", help="skip the HTML rendering")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_console_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch-data", help="download (or copy) and extract the aclImdb archive")
    fetch.add_argument(
        "--source",
        default=None,
        help="archive URL or local path (default: the official Stanford URL)",
    )
    fetch.add_argument(
        "--dest", type=Path, default=None, help="folder to extract into (default data/raw)"
    )
    fetch.add_argument("--force", action="store_true", help="extract again even if present")

    for stage in STAGES.values():
        _add_param_options(sub.add_parser(stage.name, help=stage.description))

    _add_param_options(compare.add_command(sub))
    pipeline_cli.add_commands(sub)

    predict = sub.add_parser("predict", help="label raw review texts with an exported model")
    predict.add_argument(
        "--model",
        required=True,
        help="a .keras file, a folder, a runs:/ or models:/ URI, or a gs:// path",
    )
    predict.add_argument("texts", nargs="+", help="review texts")
    promote.add_command(sub)
    serve.add_command(sub)
    app_cli.add_command(sub)
    return parser


def _run_stage(
    args: argparse.Namespace, stage: Stage | None = None, given: dict | None = None
) -> int:
    """Execute a stage's notebook (the command's, else ``stage``) with the -p options and
    ``given`` (a command's own arguments, which win)."""
    stage = stage or get_stage(args.command)
    parameters = {**collect_parameters(args.params), **(given or {})}
    check_parameter_names(parameters)  # secrets come from the environment, never parameters
    # Before any kernel starts or anything is written: a name the notebook lacks (papermill
    # would only warn), a value its checks refuse, an output folder over the notebooks.
    stage.check_parameters(parameters)
    upload_to = args.output_dir if gcs.is_gcs_uri(args.output_dir) else None
    if args.output_dir and not upload_to:  # relative to the working directory, as made
        paths.check_output_dir("--output-dir", args.output_dir, base=Path.cwd())
    if upload_to:
        gcs.check_bucket(upload_to)  # before the work, not after it
    run_dir = None if upload_to or not args.output_dir else _make_run_dir(args.output_dir)
    code, execution = run_stage(
        stage,
        parameters,
        # Written locally, uploaded once at the end: saving to gs:// after every cell
        # hits Cloud Storage's rate limits (papermill #312).
        run_dir=run_dir,
        kernel_name=args.kernel,
        log_output=args.log_output,
        render=not args.no_html,
    )
    if upload_to:
        try:
            gcs.upload(execution.run_dir, upload_to)
        except StorageError as exc:  # the run's own outcome stays the exit status if it failed
            print_error(str(exc))
            return code or 2
        print(f"run folder {execution.run_dir} uploaded to {upload_to}")
    return code


def _make_run_dir(output_dir: str) -> Path:
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # The folder the user named cannot be made there (a file in the way, no permission):
        # their input to change, not a failure of the machine.
        raise ParameterError(
            "--output-dir", f"cannot create {path} ({exc.strerror}): choose a folder you can write"
        ) from None
    # A folder that is there but read-only or full: said now, before any kernel starts.
    return paths.check_writable("--output-dir", path)


def _command(args: argparse.Namespace) -> int:
    if args.command != "fetch-data":
        # A user:password@ in $MLFLOW_TRACKING_URI into MLflow's own variables, before MLflow
        # reads the environment or a kernel inherits it: no URI shown holds the password.
        move_uri_credentials()
    if args.command == "fetch-data":
        # Here: requests' import (~0.25 s, measured) is for this command only.
        from lib.data.fetch import fetch_data

        dest = fetch_data(source=args.source, dest=args.dest, force=args.force)
        print(f"raw data ready: {dest}")
        return 0
    if args.command == "predict":
        for text, label, probability in predict_texts(args.model, args.texts):
            print(f"{label}\t{probability:.4f}\t{text[:80]}")
        return 0
    if args.command == "promote":
        return promote.run(args)
    if args.command == serve.COMMAND:
        return serve.run(args)
    if args.command == compare.COMMAND:
        return _run_stage(args, COMPARE, compare.parameters(args))
    if args.command == "app":
        return app_cli.run(args)
    if args.command in ("pipeline", "status"):
        return pipeline_cli.run(args)
    return _run_stage(args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (see the module's docstring)."""
    args = build_parser().parse_args(argv)
    configure_console(args.log_level, args.log_format)
    with stopping.stop_signals() as signals:
        try:
            code = _command(args)
            sys.stdout.flush()  # here, where a closed pipe is handled, not at exit
            signals.cancel()  # in the try: a signal just before it is handled below
        except UserError as exc:
            print_error(str(exc))
            return 2
        except BrokenPipeError as exc:
            if closed_pipe.stdout_closed():  # `runner status | head -4`: quietly
                return closed_pipe.put_stdout_aside()
            return _failed(args.command, exc)
        except KeyboardInterrupt as exc:  # Stopped (a signal), or a Ctrl-C of a test's own
            if isinstance(exc, stopping.Stopped):
                stopping.end_processes(exc.processes)
            return _stopped(args.command, getattr(exc, "signum", signal.SIGINT))
        except Exception as exc:
            return _failed(args.command, exc)
        if signals.signum is None:
            return code
        # Stopped gently: the execution ended, its notebook logged; end what is left.
        stopping.end_processes(signals.processes)
        return _stopped(args.command, signals.signum)


def _failed(command: str, exc: Exception) -> int:
    # Not the input's fault (a bug, a network lost mid-download): a failed execution, with
    # the traceback for whoever looks into it.
    print_error(f"{command} failed: {type(exc).__name__}: {first_line(exc)}")
    traceback_text = "".join(traceback.format_exception(exc))
    print(mask_text(traceback_text, secret_values()), file=sys.stderr)
    return 1


def _stopped(command: str, signum: int) -> int:
    """The last line of a stopped command; its exit status (130 Ctrl-C, 143 SIGTERM)."""
    if signum == signal.SIGTERM:
        print(f"terminated (SIGTERM): {command} stopped", file=sys.stderr)
        return 143
    print("interrupted", file=sys.stderr)
    return 130
