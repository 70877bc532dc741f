"""``python -m runner compare RUN_A RUN_B``: the compare notebook on two runs of one stage
(:data:`runner.stages.COMPARE`), logged to a run of the experiment ``comparisons``.

A run is named by its id, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``latest``;
the notebook's other parameters come with ``-p`` as for any stage. Both runs are resolved
before any kernel starts: a run that is not there, one run twice or two runs of different
stages is one line, exit status 2, and nothing is logged.
"""

from __future__ import annotations

import argparse
from typing import Any

COMMAND = "compare"


def add_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``compare`` subcommand with its two runs; the caller adds the stage options."""
    parser = sub.add_parser(
        COMMAND,
        help="what changed between two runs: parameters, data, code, environment, metrics, "
        "plots and notebooks, logged to the experiment comparisons",
    )
    for name in ("run_a", "run_b"):
        parser.add_argument(
            name,
            metavar=name.upper(),
            help="a run id, models:/NAME@ALIAS, models:/NAME/VERSION, or latest (the latest "
            "finished run of -p stage in -p experiment)",
        )
    return parser


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The notebook parameters that the command's positional arguments give."""
    return {"run_a": args.run_a, "run_b": args.run_b}
