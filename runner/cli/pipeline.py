"""The ``pipeline`` and ``status`` commands of ``python -m runner``: their options, and the
parameters per stage.

Parameters take the stage commands' options with the stage before the name:
``-p train.epochs 3``, ``-r prep.processed_dir data/p2``; ``-y`` and ``-f FILE.yml`` take a
mapping per stage (``{train: {epochs: 3}, prep: {raw_dirs: [a, b]}}``; a dotted key such as
``train.epochs: 3`` works too). Later options override earlier ones.
"""

from __future__ import annotations

import argparse
from typing import Any

from lib.core.errors import ParameterError
from runner.cli.options import add_parameter_options, collect_parameters
from runner.stages import STAGES

COMMANDS = ("pipeline", "status")
_PER_STAGE = (
    "A stage is skipped when its notebook's code cells, its parameters, its data, the project "
    "modules it imports and its role's lock are what they were at its last successful "
    "run, and its products are still there. Parameters per stage: -p train.epochs 3, "
    "-r prep.processed_dir data/p2, or -y/-f with a mapping per stage ('{prep: {raw_dirs: [a]}, "
    "train: {epochs: 3}}'); later options override earlier ones."
)


def default_stages() -> list[str]:
    """The stages ``pipeline`` and ``status`` take without ``--stages``."""
    return [name for name, stage in STAGES.items() if stage.in_default_pipeline]


def _stage_hint() -> str:
    names = [f"{name}.NAME" for name in STAGES]
    return f"write {', '.join(names[:-1])} or {names[-1]} (e.g. -p train.epochs 3)"


def _dag() -> str:
    """``prep -> train (-> tune)``: the stages in order, the optional ones in brackets."""
    return " ".join(
        (f"-> {n}" if s.in_default_pipeline else f"(-> {n})") if i else n
        for i, (n, s) in enumerate(STAGES.items())
    )


def _stage_list(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in STAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown stage {unknown[0] if unknown else value!r}: use a comma list of "
            f"{', '.join(STAGES)} (e.g. {','.join(STAGES)})"
        )
    return [stage for stage in STAGES if stage in names]  # the DAG's order


def add_commands(sub: Any) -> None:
    """The two subcommands, on the runner's subparsers."""
    helps = {
        "pipeline": f"{_dag()}, re-running only the stages that changed",
        "status": "each stage of the pipeline: up to date or why not, its last run",
    }
    for command in COMMANDS:
        p = sub.add_parser(
            command, help=helps[command], description=f"{helps[command]}. {_PER_STAGE}"
        )
        add_parameter_options(p)
        p.add_argument(
            "--stages",
            type=_stage_list,
            default=default_stages(),
            help=f"comma list of the stages (default {','.join(default_stages())}; "
            f"all: {','.join(STAGES)})",
        )
    pipeline = sub.choices["pipeline"]
    pipeline.add_argument(
        "--force",
        type=_stage_list,
        action="append",
        default=[],
        metavar="STAGE",
        help="run this stage even if it is up to date (repeatable, or a comma list)",
    )
    pipeline.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        help="seconds to wait for another pipeline running a stage (default 3600)",
    )
    pipeline.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    pipeline.add_argument(
        "--log-output", action="store_true", help="stream cell outputs to the log"
    )
    pipeline.add_argument("--no-html", action="store_true", help="skip the HTML renderings")


def _put(stages: dict[str, dict[str, Any]], key: Any, value: Any, option: str) -> None:
    name = str(key)
    stage, dot, param = name.partition(".")
    if stage in STAGES and not dot and isinstance(value, dict):
        for sub_key, sub_value in value.items():
            stages[stage][str(sub_key)] = sub_value
        return
    if stage not in STAGES or not param:
        raise ParameterError(f"{option} {name}", f"the name lacks its stage: {_stage_hint()}")
    stages[stage][param] = value


def stage_parameters(items: list[tuple[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The parameter options, in order, split per stage."""
    stages: dict[str, dict[str, Any]] = {name: {} for name in STAGES}
    for kind, payload in items or []:
        option = {"p": "-p", "r": "-r", "y": "-y", "f": f"-f {payload}"}[kind]
        for key, value in collect_parameters([(kind, payload)]).items():
            _put(stages, key, value, option)
    return stages


def run(args: argparse.Namespace) -> int:
    """``pipeline`` or ``status``; the exit status."""
    # Here, not at the top: the pipeline's digests import pyarrow through lib.data.prep (~0.3 s,
    # measured), which the other commands, and a refused one, do without.
    from runner.pipeline import plan as pipeline

    given = stage_parameters(args.params)
    if args.command == "status":
        for line in pipeline.status_lines(args.stages, given):
            print(line)
        return 0
    force = {stage for group in args.force for stage in group}
    if outside := sorted(force - set(args.stages)):
        raise ParameterError(
            "--force", f"{outside[0]} is not one of --stages {','.join(args.stages)}: add it"
        )
    options = pipeline.Options(
        kernel=args.kernel,
        log_output=args.log_output,
        render=not args.no_html,
        lock_timeout=pipeline.LOCK_TIMEOUT_S if args.lock_timeout is None else args.lock_timeout,
    )
    return pipeline.run_pipeline(args.stages, given, force, options)
