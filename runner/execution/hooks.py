"""Post-execution hooks that the runner applies to every stage execution."""

from __future__ import annotations

import logging

from lib.tracking.runs import RUN_ID_SCRAP, TRACKING_URI_SCRAP, log_notebook, resolve_tracking_uri
from runner.execution.execute import Execution, PostHook

log = logging.getLogger(__name__)


def log_notebook_to_mlflow(execution: Execution) -> None:
    """Attach the executed notebook and its HTML to the MLflow run that the notebook glued,
    and end that run FAILED when the execution failed, KILLED when it was pruned or
    interrupted (:attr:`Execution.status`)."""
    run_id = execution.scraps.get(RUN_ID_SCRAP)
    if not run_id:
        return
    uri = resolve_tracking_uri(execution.scraps.get(TRACKING_URI_SCRAP))
    files = [execution.output_path] + ([execution.html_path] if execution.html_path else [])
    log_notebook(uri, run_id, files, status=execution.status, error=execution.error)
    log.info("executed notebook logged to MLflow run %s", run_id)


def default_hooks() -> list[PostHook]:
    """Hooks run after each execution, success or failure."""
    return [log_notebook_to_mlflow]
