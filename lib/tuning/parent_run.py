"""The study's MLflow parent run: every trial's run is its child.

The process that creates a study creates the parent run and keeps its id in the study, so
a process that resumes or joins the study finds the same run again. At the end the run
gets the study's summary files and counts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lib.core.errors import TrackingError
from lib.tracking import provenance
from lib.tracking import runs as tracking
from lib.tracking.store_check import check_store, public_uri
from lib.tuning.attrs import PARENT_RUN_ATTR
from lib.tuning.backend import backend_module
from lib.tuning.config import TuneConfig
from lib.tuning.storage import public_storage
from lib.tuning.study import StudyHandle

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def _resume(client, run_id: str, uri: str) -> bool:
    """Mark the study's earlier parent run RUNNING again; False if the store lacks it."""
    import mlflow

    try:
        client.get_run(run_id)
        client.update_run(run_id, status="RUNNING")
    except mlflow.exceptions.MlflowException:
        log.warning("the study's parent run %s is not in %s; starting a new one", run_id, uri)
        return False
    log.info("MLflow parent run %s (resumed)", run_id)
    return True


def start_parent_run(config: TuneConfig, handle: StudyHandle, wait_s: float = 30.0) -> str | None:
    """The study's parent MLflow run: created by the process that created the study (its
    id is kept in the study), found again by a process that resumes or joins it. None when
    MLflow is off. Raises TrackingError if the store cannot be used."""
    if not config.setup_mlflow:
        return None
    import mlflow

    uri = tracking.resolve_tracking_uri(config.mlflow_tracking_uri)
    # Also opens a local store, under a lock: tune processes that create one new database
    # at the same moment would race MLflow's schema migrations.
    check_store(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    study = handle.study
    run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if run_id is None and not handle.created:
        # The creator is about to record it (joined at the same moment): wait a little.
        deadline = time.monotonic() + wait_s
        while run_id is None and time.monotonic() < deadline:
            time.sleep(1.0)
            run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if run_id is not None and _resume(client, run_id, uri):
        return run_id
    try:
        experiment_id = tracking.setup_experiment(
            config.mlflow_exp_name, config.mlflow_artifact_location
        )
        tags = tracking.run_tags(
            handle.hptuning_tag,
            {"study_name": config.study_name, "optuna_storage": public_storage(config.storage)},
        )
        data_path = config.train_params.get("data_path") or config.train_defaults.get("data_path")
        tags.update(provenance.run_tags("tune", data_path))
        run = client.create_run(experiment_id, run_name=f"study-{config.study_name}", tags=tags)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(
            f"MLflow at {public_uri(uri)} failed: {exc.message}; check "
            "mlflow_tracking_uri (or $MLFLOW_TRACKING_URI)"
        ) from None
    run_id = run.info.run_id
    study.set_user_attr(PARENT_RUN_ATTR, run_id)
    summary = {
        k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in config.summary().items()
    }
    client.log_batch(
        run_id,
        params=[mlflow.entities.Param(k, v) for k, v in tracking.loggable_params(summary).items()],
    )
    # The trials' train notebooks and the backend that runs them are the tune's code too.
    provenance.log_environment(
        run_id, "tune", tracking_uri=uri, also_runs=("train",), extra_modules=backend_module()
    )
    log.info("MLflow parent run %s", run_id)
    return run_id


def finish_parent_run(
    config: TuneConfig,
    run_id: str | None,
    study: optuna.Study,
    files: Sequence[Path],
    failed: bool,
) -> None:
    """Log the study's summary files and counts to the parent run and end it."""
    if not run_id:
        return
    import mlflow
    from optuna.trial import TrialState

    client = mlflow.MlflowClient(tracking.resolve_tracking_uri(config.mlflow_tracking_uri))
    for path in files:
        if path and Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path="study")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    metrics = {
        "n_complete": states.count(TrialState.COMPLETE),
        "n_pruned": states.count(TrialState.PRUNED),
        "n_failed": states.count(TrialState.FAIL),
    }
    if len(study.directions) == 1 and metrics["n_complete"]:
        metrics[f"best_{config.objectives[0]}"] = study.best_value
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
