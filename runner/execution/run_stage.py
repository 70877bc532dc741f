"""The one sequence that runs a stage: execute its notebook, run the post-execution hooks
(its notebook logged to its MLflow run), and report the outcome. The stage commands, the
pipeline and the tuning trials all call :func:`run_stage`.

Light at import: papermill (~1.6 s) is imported when a stage runs, not before, so that the
runner refuses bad input, and ``status`` decides, without it; the tune notebook's kernel
starts its trial kernels before it has imported papermill.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.core.secrets import mask_text, secret_values
from runner.stages import Stage

if TYPE_CHECKING:
    from runner.execution.execute import Execution

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_stage(
    stage: Stage,
    parameters: dict[str, Any],
    *,
    report: bool = True,
    run_dir: Path | None = None,
    kernel_name: str | None = None,
    **options: Any,
) -> tuple[int, Execution]:
    """Execute ``stage``'s notebook with ``parameters`` into ``run_dir`` (default: a new
    run folder), with the runner's hooks; print its outcome unless ``report`` is False (a
    trial's outcome is the tuning loop's to tell). Its exit status and the execution.
    ``options`` go to :func:`runner.execution.execute.execute_stage` (``log_output``, ``render``,
    ``execution_timeout``, ``time_limit_s``, ``km``...)."""
    # Here, not at the top: papermill's import (~1.6 s, measured) is paid only by a command
    # that runs a notebook (tests/runner/cli/test_main.py holds the runner to refuse without it).
    from runner.execution.execute import KERNEL_NAME, execute_stage
    from runner.execution.hooks import default_hooks  # it imports execute: the same reason

    execution = execute_stage(
        stage,
        parameters,
        run_dir=run_dir,
        kernel_name=kernel_name or KERNEL_NAME,
        hooks=default_hooks(),
        **options,
    )
    code = print_report(stage.name, execution) if report else exit_status(execution)
    return code, execution


def exit_status(execution: Execution) -> int:
    """0 done, 2 bad input (a user error), 130 interrupted, 1 failed."""
    if execution.ok:
        return 0
    if execution.user_error:
        return 2
    return 130 if execution.interrupted else 1


def print_report(stage: str, execution: Execution) -> int:
    """Print the outcome of a stage; its exit status (:func:`exit_status`)."""
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
        print_error(f"{stage} stopped at {execution.error}{where}")
    elif execution.interrupted:  # a signal's doing, not the notebook's: no traceback
        print_error(f"{stage} stopped: {execution.error}{where}")
    else:
        print_error(f"{stage} failed: {execution.error}{where}")
        if execution.error_detail:
            print(_ANSI.sub("", execution.error_detail), file=sys.stderr)
    return exit_status(execution)


def print_error(message: str) -> None:
    """``error: message`` on stderr, with every secret value masked."""
    print(mask_text(f"error: {message}", secret_values()), file=sys.stderr)
