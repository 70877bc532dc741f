"""Execute one notebook headlessly with papermill and collect what it left behind.

Parameters in, executed notebook (plus an HTML rendering) out, scraps read back with
scrapbook, by the runner's papermill engine (``runner.execution.engine``: kernels on IPC transport,
the
progress display). Post-execution hooks (such as logging the notebook to the MLflow run that the
notebook glued) run whether the notebook succeeded or failed.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from traceback import format_exception
from typing import Any

import nbformat
import papermill
from jupyter_client.kernelspec import NoSuchKernel
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError
from papermill.execute import ERROR_MARKER_TAG
from papermill.iorw import papermill_io

from lib.core import paths
from lib.core.errors import UserError, first_line, output_faults, user_error_class
from lib.core.paths import RUN_DIR_ENV, new_run_dir
from lib.core.secrets import mask_text, secret_values
from lib.core.speedups import import_in_background, kernel_arguments
from lib.tracking.runs import resolve_tracking_uri, store_modules
from lib.tuning.attrs import PRUNED_ERROR
from runner.execution.console import StageProgress, clear_live_line
from runner.execution.engine import ENGINE
from runner.execution.watch import INTERRUPTED, KernelWatch
from runner.stages import Stage

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
MASKED = "masked://"


class _MaskingWriter:
    """papermill I/O handler for ``masked://<local path>``: every save of the output
    notebook (papermill saves after each cell) has secret values masked before it is
    written, so no secret ever reaches the disk, the HTML or an upload."""

    @staticmethod
    def _local(path: str) -> str:
        return path[len(MASKED) :]

    def read(self, path: str) -> str:
        return Path(self._local(path)).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in Path(self._local(path)).iterdir()]

    def write(self, buf: str, path: str) -> None:
        # A reader never sees a half-written notebook; a full disk is one line (OutputError).
        local = Path(self._local(path))
        with output_faults("run folder", local.parent):
            paths.atomic_write_text(local, mask_text(buf, secret_values()))

    def pretty_path(self, path: str) -> str:
        return self._local(path)


papermill_io.register(MASKED, _MaskingWriter())


@dataclass
class Execution:
    """What one notebook execution produced."""

    stage: str
    parameters: dict[str, Any]
    output_path: Path
    html_path: Path | None = None
    error: str | None = None  # one line: "cell N: EName: message"
    error_detail: str | None = None  # the traceback, for the console (not for user errors)
    # The failure was bad input (the notebook raised a lib.core.errors.UserError, or no such
    # kernel): ``error`` names the problem and the fix, and no traceback is kept.
    user_error: bool = False
    scraps: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    pruned: bool = False  # a tuning trial that stopped itself (TrialPruned): not a failure
    interrupted: bool = False  # stopped by a signal (SIGTERM, Ctrl-C) or a kernel interrupt

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """As MLflow says it: FINISHED, KILLED (pruned or interrupted) or FAILED."""
        if self.ok:
            return "FINISHED"
        return "KILLED" if self.pruned or self.interrupted else "FAILED"

    @property
    def run_dir(self) -> Path:
        return self.output_path.parent


# Called with the Execution once the notebook and its HTML are written, success or not.
PostHook = Callable[[Execution], None]


def render_html(notebook_path: Path) -> Path:
    """Write ``<notebook>.html`` beside the notebook (nbconvert's lab template)."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    with warnings.catch_warnings():
        # scrapbook's mime types have no HTML form; nbconvert warns once per scrap.
        warnings.simplefilter("ignore", UserWarning)
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    html_path = notebook_path.with_suffix(".html")
    html_path.write_text(mask_text(body, secret_values()), encoding="utf-8")
    return html_path


def read_scraps(notebook_path: Path) -> dict[str, Any]:
    """The values the notebook glued with scrapbook (an empty dict if none or unreadable)."""
    import scrapbook as sb

    try:
        return {
            name: scrap.data for name, scrap in sb.read_notebook(str(notebook_path)).scraps.items()
        }
    except Exception as exc:  # a half-written notebook must not hide the real error
        log.warning("could not read scraps from %s: %s", notebook_path, exc)
        return {}


def _describe_failure(exc: Exception, watch: KernelWatch) -> tuple[str, str, bool]:
    """``(one line, detail, whether it is a user error)`` for an execution that raised."""
    where = None
    if isinstance(exc, PapermillExecutionError) and exc.cell_index is not None:
        where = f"cell {exc.cell_index}"
    if watch.stop_reason:  # stopped by the runner: the reason says it all
        # A kernel killed after its grace ends in DeadKernelError, which names no cell.
        if where is None and watch.cell_index is not None:
            where = f"cell {watch.cell_index}"
        return f"{watch.stop_reason} ({where})" if where else watch.stop_reason, "", False
    if isinstance(exc, PapermillExecutionError):
        # An exception inside the kernel arrives as its class name and message only.
        where = where or "a cell"
        if exc.ename == "KeyboardInterrupt":  # interrupted from elsewhere (JupyterLab, a test)
            return f"{INTERRUPTED} ({where})", "", False
        message = next((line for line in (exc.evalue or "").splitlines() if line.strip()), "")
        line = f"{where}: {exc.ename}: {message.strip()}" if message else f"{where}: {exc.ename}"
        # A pruned tuning trial stopped on purpose, and says why in one line.
        if exc.ename == PRUNED_ERROR:
            return line, "", False
        if user_error_class(exc.ename) is not None:
            return line, "", True
        return line, "\n".join(exc.traceback or []), False
    if isinstance(exc, UserError):  # raised here, not in the kernel: a full run folder
        return str(exc), "", True
    if isinstance(exc, DeadKernelError):
        return watch.death(), str(exc), False
    if isinstance(exc, CellTimeoutError):
        return f"execution timed out: {first_line(exc)}", "", False
    if isinstance(exc, NoSuchKernel):
        return (
            f"no Jupyter kernel named {exc.name!r}: leave --kernel out for the default, or "
            "name one that `jupyter kernelspec list` shows",
            "",
            True,
        )
    return f"{type(exc).__name__}: {first_line(exc)}", "".join(format_exception(exc)), False


def _drop_error_banner(notebook_path: Path) -> None:
    """A pruned trial's notebook ends with its one line: without papermill's red banner
    ("An Exception was encountered at ...") and its anchor."""
    nb = nbformat.read(notebook_path, as_version=4)
    kept = [c for c in nb.cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
    if len(kept) != len(nb.cells):
        nb.cells = kept
        paths.atomic_write_text(notebook_path, nbformat.writes(nb))


@contextmanager
def _run_dir_env(run_dir: Path, starts_kernel: bool):
    """$RUNNER_RUN_DIR = the run folder, for a kernel papermill starts now (it inherits
    this environment): the tune notebook puts its trials' folders there. Not set when a
    kernel is given (``km=``): it is running already, and concurrent calls would race."""
    if not starts_kernel:
        yield
        return
    before = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = before


def execute_stage(
    stage: Stage,
    parameters: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    kernel_name: str = KERNEL_NAME,
    log_output: bool = False,
    render: bool = True,
    hooks: list[PostHook] | None = None,
    execution_timeout: int | None = None,
    time_limit_s: float | None = None,
    **engine_kwargs: Any,
) -> Execution:
    """Execute ``stage``'s notebook into ``run_dir``; never raises for a failing cell.

    ``execution_timeout`` limits each cell (nbclient's); ``time_limit_s`` the whole
    execution: past it the kernel is interrupted, then killed if it does not stop
    (:class:`runner.execution.watch.KernelWatch`).

    The kernel's working directory is the project root, so relative paths in parameters
    mean the same as in JupyterLab (where ``lib.core.paths.resolve`` maps them to the root).
    """
    parameters = dict(parameters or {})
    with output_faults("run folder", run_dir or paths.runs_dir()):  # a read-only project
        run_dir = Path(run_dir) if run_dir else new_run_dir(stage.name)
        run_dir.mkdir(parents=True, exist_ok=True)
    output_path = run_dir / f"{stage.name}.ipynb"
    execution = Execution(stage=stage.name, parameters=parameters, output_path=output_path)
    log.info("executing %s -> %s", stage.path, output_path, extra={"stage": stage.name})
    # What runs after the notebook imports slowly (MLflow and its store for the default
    # hook, ~4 s; nbconvert for the HTML): import it while the notebook runs instead.
    later = ["nbconvert"] if render else []
    if hooks and stage.tracked:
        later += store_modules(resolve_tracking_uri(parameters.get("mlflow_tracking_uri")))
    import_in_background(later, "runner-imports")
    if "km" not in engine_kwargs:  # nbclient starts the kernel: a stage of the runner's
        engine_kwargs.setdefault("extra_arguments", kernel_arguments())
        # (A lent kernel runs a tuning trial inside the tune kernel: no display there.)
        engine_kwargs.setdefault("stage_progress", StageProgress(stage.name))
    # (A test may hand its own watch, to stop the execution itself.)
    watch = engine_kwargs.setdefault("watch", KernelWatch(time_limit_s))
    started = time.perf_counter()
    try:
        with _run_dir_env(run_dir, starts_kernel="km" not in engine_kwargs):
            papermill.execute_notebook(
                str(stage.path),
                MASKED + str(output_path),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(paths.project_root()),
                log_output=log_output,
                progress_bar=False,
                execution_timeout=execution_timeout,
                engine_name=ENGINE,
                **engine_kwargs,
            )
    except Exception as exc:  # any failure still yields the partial notebook
        error, detail, execution.user_error = _describe_failure(exc, watch)
        ename = getattr(exc, "ename", None)
        execution.pruned = ename == PRUNED_ERROR and not watch.stop_reason
        execution.interrupted = watch.stop_reason == INTERRUPTED or (
            ename == "KeyboardInterrupt" and not watch.stop_reason
        )
        values = secret_values()
        execution.error, execution.error_detail = (
            mask_text(error, values),
            mask_text(detail, values),
        )
    execution.seconds = time.perf_counter() - started
    clear_live_line()  # what follows (the outcome, the summary) starts on a clean line
    if output_path.exists():
        if execution.pruned:
            _drop_error_banner(output_path)
        execution.scraps = read_scraps(output_path)
        if render:
            try:
                execution.html_path = render_html(output_path)
            except Exception as exc:
                log.warning("could not render %s as HTML: %s", output_path, exc)
    for hook in hooks or []:
        try:
            hook(execution)
        except Exception as exc:
            log.error("post-execution hook %s failed: %s", getattr(hook, "__name__", hook), exc)
            if execution.error is None:
                execution.error = mask_text(
                    f"after execution: {type(exc).__name__}: {first_line(exc)}", secret_values()
                )
    level = logging.INFO if execution.ok or execution.pruned else logging.ERROR
    outcome = "succeeded" if execution.ok else f"failed: {execution.error}"
    if execution.user_error:
        outcome = f"stopped at {execution.error} (bad input)"
    elif execution.pruned:
        outcome = f"pruned: {execution.error}"
    elif execution.interrupted:
        level, outcome = logging.WARNING, f"stopped: {execution.error}"
    log.log(
        level,
        "%s %s in %.1f s",
        stage.name,
        outcome,
        execution.seconds,
        extra={"stage": stage.name, "output_notebook": str(output_path)},
    )
    return execution
