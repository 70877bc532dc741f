"""``python -m runner``: fetch the data, execute stage notebooks, predict with a model.

Stage commands take parameters as papermill does: ``-p NAME VALUE`` (typed by papermill's
rules: True/False/None, ints, floats, else a string), ``-r NAME VALUE`` (always a string),
``-y YAML`` and ``-f FILE.yml`` (for lists and named setups under ``conf/``). Later options
override earlier ones.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from lib import paths
from lib.logs import setup_logging
from lib.storage import StorageError
from lib.tracking import TrackingError
from runner.stages import STAGES, get_stage

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


class _ParamAction(argparse.Action):
    """Collect -p/-r/-y/-f in command-line order into one ordered list of (kind, payload)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, self.dest) or []
        items.append((self.const, values))
        setattr(namespace, self.dest, items)


def collect_parameters(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter options in order; a later option overrides an earlier one."""
    params: dict[str, Any] = {}
    for kind, payload in items or []:
        if kind == "p":
            params[payload[0]] = resolve_type(payload[1])
        elif kind == "r":
            params[payload[0]] = payload[1]
        elif kind in ("y", "f"):
            text = payload if kind == "y" else _read_params_file(payload)
            data = yaml.safe_load(text) or {}
            if not isinstance(data, dict):
                where = "the -y value" if kind == "y" else payload
                raise SystemExit(f"error: {where} must be a YAML mapping of parameter names")
            params.update(data)
    return params


def _read_params_file(name: str) -> str:
    path = Path(name)
    if not path.exists() and not path.is_absolute():
        path = paths.resolve(name)  # conf/foo.yml works from any cwd
    if not path.is_file():
        raise SystemExit(f"error: parameters file {name} does not exist")
    return path.read_text(encoding="utf-8")


def _add_param_options(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="run folder for the executed notebook (default runs/<UTC time>-<stage>/)",
    )
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    p.add_argument("--log-output", action="store_true", help="stream cell outputs to the log")
    p.add_argument("--no-html", action="store_true", help="skip the HTML rendering")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")
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

    predict = sub.add_parser("predict", help="label raw review texts with an exported model")
    predict.add_argument(
        "--model",
        required=True,
        help="a .keras file, a folder, a runs:/ or models:/ URI, or a gs:// path",
    )
    predict.add_argument("texts", nargs="+", help="review texts")
    return parser


def _run_stage(args: argparse.Namespace) -> int:
    from lib.secrets import check_parameter_names

    stage = get_stage(args.command)
    parameters = collect_parameters(args.params)
    check_parameter_names(parameters)  # secrets come from the environment, never parameters
    from lib import storage

    upload_to = args.output_dir if storage.is_gcs_uri(args.output_dir) else None
    if upload_to:
        storage.check_bucket(upload_to)  # before the work, not after it
    prestarted = None
    if stage.name == "tune":
        # The trial kernels start first (TensorFlow imports while papermill and the tune
        # kernel start); the tune notebook adopts them through the environment.
        from lib.tuning import prestart_trial_kernels

        prestarted = prestart_trial_kernels(parameters)
    try:
        from runner.execute import KERNEL_NAME, execute_stage
        from runner.hooks import default_hooks

        if prestarted is not None:
            from runner.kernel_pool import HANDOFF_ENV, handoff_env_value

            os.environ[HANDOFF_ENV] = handoff_env_value(prestarted.handoffs())
        execution = execute_stage(
            stage,
            parameters,
            # Written locally, uploaded once at the end: saving to gs:// after every cell
            # hits Cloud Storage's rate limits (papermill #312).
            run_dir=None if upload_to or not args.output_dir else Path(args.output_dir),
            kernel_name=args.kernel or KERNEL_NAME,
            log_output=args.log_output,
            render=not args.no_html,
            hooks=default_hooks(),
        )
    finally:
        if prestarted is not None:
            os.environ.pop(HANDOFF_ENV, None)
            prestarted.shutdown()
    if upload_to:
        storage.upload(execution.run_dir, upload_to)
        print(f"run folder {execution.run_dir} uploaded to {upload_to}")
    if execution.ok:
        print(f"{stage.name} succeeded in {execution.seconds:.1f} s")
        print(f"executed notebook: {execution.output_path}")
        if execution.html_path:
            print(f"html: {execution.html_path}")
        for name, value in execution.scraps.items():
            if not isinstance(value, (dict, list)) or len(str(value)) < 200:
                print(f"{name}: {value}")
        return 0
    print(f"error: {stage.name} failed: {execution.error}", file=sys.stderr)
    if execution.error_detail:
        print(_ANSI.sub("", execution.error_detail), file=sys.stderr)
    if execution.output_path.exists():
        print(f"partial notebook: {execution.output_path}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(level=args.log_level)
    try:
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
        return _run_stage(args)
    except (ValueError, OSError, StorageError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
