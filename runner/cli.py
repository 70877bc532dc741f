"""``python -m runner``: fetch the data, execute stage notebooks, predict with a model,
promote a registered model version to champion.

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
second signal, or a stop that takes longer than 25 s, stops it at once (``runner.stopping``).
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from lib import paths
from lib.errors import ParameterError, StorageError, UserError, first_line
from lib.params import yaml_problem
from lib.secrets import mask_text, secret_values
from runner import closed_pipe, stopping
from runner.progress import add_console_options, configure_console
from runner.stages import STAGES, get_stage

if TYPE_CHECKING:
    from runner.execute import Execution

log = logging.getLogger("runner")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def resolve_type(value: str) -> Any:
    """papermill's ``-p`` typing rules (``papermill.cli._resolve_type``, which a test holds
    this to): True/False/None, then int, then float, else the string. Not imported from
    papermill: its import takes ~1.6 s, and the tune stage starts its trial kernels first."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like any other bad input (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


class _ParamAction(argparse.Action):
    """Collect -p/-r/-y/-f in command-line order into one ordered list of (kind, payload)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, self.dest) or []
        items.append((self.const, values))
        setattr(namespace, self.dest, items)


def collect_parameters(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter options in order; a later option overrides an earlier one.

    A -y value or -f file that is not a YAML mapping raises ParameterError naming the option.
    """
    params: dict[str, Any] = {}
    for kind, payload in items or []:
        if kind == "p":
            params[payload[0]] = resolve_type(payload[1])
        elif kind == "r":
            params[payload[0]] = payload[1]
        elif kind in ("y", "f"):
            option = "-y" if kind == "y" else f"-f {payload}"
            text = payload if kind == "y" else _read_params_file(payload)
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ParameterError(
                    option,
                    f"not valid YAML: {yaml_problem(exc)}; write a mapping, e.g. "
                    "'{epochs: 2, raw_dirs: [a, b]}'",
                ) from None
            if not isinstance(data, dict):
                raise ParameterError(
                    option,
                    f"a YAML {type(data).__name__}, not a mapping of parameter names to values: "
                    "write it as e.g. '{epochs: 2, raw_dirs: [a, b]}'",
                )
            params.update(data)
    return params


def _read_params_file(name: str) -> str:
    path = Path(name)
    if not path.exists() and not path.is_absolute():
        path = paths.resolve(name)  # conf/foo.yml works from any cwd
    if not path.is_file():
        raise ParameterError(
            f"-f {name}",
            "no such file: give a YAML file of parameters (a relative path is also looked "
            f"up in the project root, e.g. conf/...; root: {paths.project_root()})",
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # unreadable: the file the user named
        raise ParameterError(f"-f {name}", f"cannot be read: {first_line(exc)}") from None


def add_parameter_options(p: argparse.ArgumentParser) -> None:
    """-p/-r/-y/-f, gathered in order into ``params`` (see :func:`collect_parameters`)."""
    p.add_argument(
        "-p",
        "--parameters",
        dest="params",
        nargs=2,
        metavar=("NAME", "VALUE"),
        action=_ParamAction,
        const="p",
        help="a parameter, typed as papermill does",
    )
    p.add_argument(
        "-r",
        "--parameters-raw",
        dest="params",
        nargs=2,
        metavar=("NAME", "VALUE"),
        action=_ParamAction,
        const="r",
        help="a parameter kept as a string",
    )
    p.add_argument(
        "-y",
        "--parameters-yaml",
        dest="params",
        metavar="YAML",
        action=_ParamAction,
        const="y",
        help="parameters as a YAML mapping",
    )
    p.add_argument(
        "-f",
        "--parameters-file",
        dest="params",
        metavar="FILE",
        action=_ParamAction,
        const="f",
        help="parameters from a YAML file",
    )


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

    from runner import pipeline_cli

    pipeline_cli.add_commands(sub, add_parameter_options)

    predict = sub.add_parser("predict", help="label raw review texts with an exported model")
    predict.add_argument(
        "--model",
        required=True,
        help="a .keras file, a folder, a runs:/ or models:/ URI, or a gs:// path",
    )
    predict.add_argument("texts", nargs="+", help="review texts")
    from runner import promote

    promote.add_command(sub)
    return parser


def _run_stage(args: argparse.Namespace) -> int:
    from lib.secrets import check_parameter_names

    stage = get_stage(args.command)
    parameters = collect_parameters(args.params)
    check_parameter_names(parameters)  # secrets come from the environment, never parameters
    # Before any kernel starts or anything is written: a name the notebook lacks (papermill
    # would only warn), a value its checks refuse, an output folder over the notebooks.
    stage.check_parameters(parameters)
    from lib import storage

    upload_to = args.output_dir if storage.is_gcs_uri(args.output_dir) else None
    if args.output_dir and not upload_to:  # relative to the working directory, as made
        paths.check_output_dir("--output-dir", args.output_dir, base=Path.cwd())
    if upload_to:
        storage.check_bucket(upload_to)  # before the work, not after it
    run_dir = None if upload_to or not args.output_dir else _make_run_dir(args.output_dir)
    from runner.execute import KERNEL_NAME, execute_stage
    from runner.hooks import default_hooks

    execution = execute_stage(
        stage,
        parameters,
        # Written locally, uploaded once at the end: saving to gs:// after every cell
        # hits Cloud Storage's rate limits (papermill #312).
        run_dir=run_dir,
        kernel_name=args.kernel or KERNEL_NAME,
        log_output=args.log_output,
        render=not args.no_html,
        hooks=default_hooks(),
    )
    code = _report(stage.name, execution)
    if upload_to:
        try:
            storage.upload(execution.run_dir, upload_to)
        except StorageError as exc:  # the run's own outcome stays the exit status if it failed
            _print_error(str(exc))
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


def _report(stage: str, execution: Execution) -> int:
    """Print the outcome of a stage; its exit status."""
    if execution.ok:
        print(f"{stage} succeeded in {execution.seconds:.1f} s")
        print(f"executed notebook: {execution.output_path}")
        if execution.html_path:
            print(f"html: {execution.html_path}")
        for name, value in execution.scraps.items():
            if not isinstance(value, (dict, list)) or len(str(value)) < 200:
                print(f"{name}: {value}")
        return 0
    where = (
        f" (partial notebook: {execution.output_path})" if execution.output_path.exists() else ""
    )
    if execution.user_error:  # the line names the problem and the fix: no traceback
        _print_error(f"{stage} stopped at {execution.error}{where}")
        return 2
    if execution.interrupted:  # a signal's doing, not the notebook's: no traceback
        _print_error(f"{stage} stopped: {execution.error}{where}")
        return 130
    _print_error(f"{stage} failed: {execution.error}{where}")
    if execution.error_detail:
        print(_ANSI.sub("", execution.error_detail), file=sys.stderr)
    return 1


def _print_error(message: str) -> None:
    print(mask_text(f"error: {message}", secret_values()), file=sys.stderr)


def _command(args: argparse.Namespace) -> int:
    if args.command != "fetch-data":
        from lib.tracking_check import move_uri_credentials

        # A user:password@ in $MLFLOW_TRACKING_URI into MLflow's own variables, before MLflow
        # reads the environment or a kernel inherits it: no URI shown holds the password.
        move_uri_credentials()
    if args.command == "fetch-data":
        from lib.fetch import fetch_data

        dest = fetch_data(source=args.source, dest=args.dest, force=args.force)
        print(f"raw data ready: {dest}")
        return 0
    if args.command == "predict":
        from lib.model_io import predict_texts

        for text, label, probability in predict_texts(args.model, args.texts):
            print(f"{label}\t{probability:.4f}\t{text[:80]}")
        return 0
    if args.command == "promote":
        from runner import promote

        return promote.run(args)
    if args.command in ("pipeline", "status"):
        from runner import pipeline_cli

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
            _print_error(str(exc))
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
    _print_error(f"{command} failed: {type(exc).__name__}: {first_line(exc)}")
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
