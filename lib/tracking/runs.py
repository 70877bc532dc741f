"""MLflow tracking: where runs go and what a run holds (the store is checked before any
work by :mod:`lib.tracking.store_check`).

Default: an embedded local store (``mlflow.db``, SQLite, and ``mlartifacts/``, both in the
project root and git-ignored; open them with ``mlflow ui --backend-store-uri
sqlite:///mlflow.db``). Any SQLite store keeps its experiments' artifacts beside its database
(``mlartifacts/<experiment>``) unless ``mlflow_artifact_location`` says otherwise.
``mlflow_tracking_uri`` or $MLFLOW_TRACKING_URI points at a remote server instead; its
basic-auth credentials come only from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
in the environment (a ``user:password@`` in $MLFLOW_TRACKING_URI is moved there; one in
a parameter is refused: :func:`lib.core.secrets.check_parameter_names`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lib.core import paths
from lib.core.errors import TrackingError, first_line, output_faults
from lib.core.secrets import is_secret_name
from lib.tracking.model_requirements import SOURCE_TAG, model_requirements, stand_ins_accepted
from lib.tracking.store_check import (
    check_artifact_location,
    check_store,
    move_uri_credentials,
    public_uri,
)

log = logging.getLogger(__name__)

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
_MAX_PARAM_LENGTH = 6000


def default_tracking_uri() -> str:
    return f"sqlite:///{paths.project_root() / LOCAL_DB}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The parameter, else $MLFLOW_TRACKING_URI (its credentials moved out of it first:
    :func:`lib.tracking.store_check.move_uri_credentials`), else the local SQLite store."""
    move_uri_credentials()
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


# A database store's first use imports SQLAlchemy and Alembic (~1.5 s): worth importing
# ahead, while waiting for something else.
DB_STORE_MODULES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.db.utils",
    "alembic.migration",
    "alembic.script",
    "alembic.runtime.environment",
    "alembic.command",
    "alembic.config",
)
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def store_modules(uri: str | None) -> list[str]:
    """The modules that opening the tracking store at ``uri`` imports (MLflow's included)."""
    if not uri:
        return []
    modules = ["mlflow"]
    if uri.partition(":")[0].partition("+")[0] in DB_SCHEMES:
        modules += DB_STORE_MODULES
    return modules


def default_artifact_location(experiment_name: str, tracking_uri: str) -> str | None:
    """For a SQLite store, ``mlartifacts/<experiment>`` beside its database file (the
    default store's: in the project root), never in a folder the store is not in; else
    None (the store's own default: a server's artifact root, a folder store's folder)."""
    db = paths.sqlite_path(tracking_uri)
    if db is None:
        return None
    return (db.parent / LOCAL_ARTIFACTS / experiment_name).as_uri()


@contextlib.contextmanager
def server_errors(action: str) -> Iterator[None]:
    """Turn MLflow and network errors while ``action`` into one clear TrackingError; a
    local file error names the run's artifact location, not the store."""
    import mlflow
    import requests

    try:
        yield
    except (mlflow.exceptions.MlflowException, requests.RequestException, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
            where = mlflow.get_artifact_uri() if mlflow.active_run() else "the artifact location"
            raise TrackingError(
                f"cannot store the MLflow artifacts at {where} while {action}: "
                f"{first_line(exc)[:300]}; check that it is writable and has space"
            ) from None
        uri = public_uri(mlflow.get_tracking_uri())
        raise TrackingError(
            f"lost the MLflow tracking store at {uri} while {action}: {first_line(exc)[:300]}; "
            "check that the store is reachable, then run again"
        ) from None


def run_tags(hptuning_tag: str | None = None, extra: Mapping[str, Any] | None = None) -> dict:
    """Tags for a run: ``hptuning_tag`` (parameter, else $MLFLOW_HPTUNING_TAG) and
    ``polyaxon_run_uuid`` ($POLYAXON_RUN_UUID), when set, plus ``extra``."""
    tags: dict[str, str] = {}
    tag = hptuning_tag or os.environ.get("MLFLOW_HPTUNING_TAG")
    if tag not in (None, ""):
        tags["hptuning_tag"] = str(tag)
    if os.environ.get("POLYAXON_RUN_UUID"):
        tags["polyaxon_run_uuid"] = os.environ["POLYAXON_RUN_UUID"]
    tags.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    return tags


def setup_experiment(name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name`` in the current store, created if it is new with
    ``artifact_location`` (else :func:`default_artifact_location`). Every experiment the
    project uses comes from here: its artifact location is checked to be writable before
    any work (TrackingError, or StorageError for a bucket, naming the location)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if artifact_location and experiment.artifact_location.rstrip(
            "/"
        ) != artifact_location.rstrip("/"):
            log.warning(
                "experiment %r exists with artifact location %s; %s is ignored",
                name,
                experiment.artifact_location,
                artifact_location,
            )
        check_artifact_location(experiment.artifact_location, name, existing=True)
        return experiment.experiment_id
    location = artifact_location or default_artifact_location(name, mlflow.get_tracking_uri())
    if location:  # checked before the experiment records it
        check_artifact_location(location, name, existing=False)
    experiment_id = mlflow.create_experiment(name, artifact_location=location)
    if not location:  # the store's own default
        recorded = mlflow.get_experiment(experiment_id).artifact_location
        check_artifact_location(recorded, name, existing=True)
    return experiment_id


def start_run(
    *,
    tracking_uri: str | None,
    experiment_name: str,
    artifact_location: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    autolog: bool = False,
):
    """Check the store, then start (and return) an active MLflow run.

    Raises TrackingError before anything else happens if the store cannot be used or the
    experiment's artifact location cannot be written.
    ``autolog`` turns on MLflow's Keras autologging (no models, no data sets) for it.
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    check_store(uri)
    mlflow.set_tracking_uri(uri)
    try:  # its artifact location is checked too: nothing fails after training
        experiment_id = setup_experiment(experiment_name, artifact_location)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(
            f"MLflow at {public_uri(uri)} failed: {first_line(exc)[:300]}; check the "
            "experiment's name and artifact location"
        ) from None
    with server_errors("starting the run"):
        run_tags_ = dict(tags or {})
        if parent_run_id:
            run_tags_["mlflow.parentRunId"] = parent_run_id
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags_)
    if autolog:
        mlflow.keras.autolog(log_models=False, log_datasets=False, silent=True)
    log.info(
        "MLflow run %s in experiment %r at %s", run.info.run_id, experiment_name, public_uri(uri)
    )
    return run


def loggable_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as MLflow strings, with anything secret-looking left out."""
    out = {}
    for name, value in params.items():
        if is_secret_name(name):
            continue
        text = str(value)
        out[name] = (
            text if len(text) <= _MAX_PARAM_LENGTH else text[: _MAX_PARAM_LENGTH - 3] + "..."
        )
    return out


def log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    with server_errors("logging the parameters"):
        mlflow.log_params(loggable_params(params))


def log_history(history: Mapping[str, list[float]]) -> None:
    """Per-epoch metrics as ``epoch_loss``, ``epoch_val_loss``, ... with the epoch as step.

    The prefix keeps them apart from the final ``val_loss``/``test_loss`` of the evaluation
    (which the notebook glues), so MLflow shows one series and one number, not a mix.
    """
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key=f"epoch_{name}", value=float(value), timestamp=now, step=epoch)
        for name, values in history.items()
        for epoch, value in enumerate(values)
    ]
    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    with server_errors("logging the per-epoch metrics"):
        for start in range(0, len(metrics), 1000):  # the REST API takes 1000 per batch
            client.log_batch(run_id, metrics=metrics[start : start + 1000])


def end_run() -> None:
    """End the active run (FINISHED)."""
    import mlflow

    with server_errors("ending the run"):
        mlflow.end_run()


def log_results(metrics: Mapping[str, float], files: list[tuple[str, Path]]) -> None:
    """Final metrics, and files as artifacts (``(artifact folder, local file)`` pairs)."""
    import mlflow

    with server_errors("logging the results"):
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for folder, path in files:
            mlflow.log_artifact(str(path), artifact_path=folder)


def log_keras_model(
    model, examples: list[str], name: str = "model", export_to: Path | None = None
) -> str:
    """Log the exported model (raw strings in, P(positive) out) as a pyfunc model that
    loads wherever its requirements, the serving lock's versions
    (:mod:`lib.tracking.model_requirements`), are installed (:mod:`lib.tracking.scoring_model`: the
    ``.keras`` file as its artifact ``keras_model``, the part of ``lib`` it needs as its
    ``code_paths``), with a signature and an input example; returns ``runs:/<run>/<name>``.

    With ``export_to``, the same ``.keras`` file is also copied there (atomically), so a
    large model is serialised once, not twice.
    """
    import shutil
    import tempfile

    import mlflow
    import pandas as pd

    # Here: scoring_model imports mlflow.pyfunc and pandas (~2 s, measured), paid only when a
    # model is logged.
    from lib.tracking import scoring_model

    with tempfile.TemporaryDirectory(prefix="mlflow-model-") as tmp:
        # Explicit requirements (inferring them would load the model again in a subprocess):
        # the serving lock's versions (lib.tracking.model_requirements).
        requirements, source = model_requirements(Path(tmp))
        keras_file = Path(tmp) / "keras" / "model.keras"
        keras_file.parent.mkdir()
        model.save(keras_file)
        code = scoring_model.code_folder(Path(tmp) / "code")
        local = Path(tmp) / name
        with _quiet_pickle_warning(), no_artifact_progress_bar(), stand_ins_accepted():
            mlflow.pyfunc.save_model(
                str(local),
                python_model=scoring_model.ScoringModel(),
                artifacts={scoring_model.KERAS_ARTIFACT: str(keras_file)},
                code_paths=[str(code)],
                signature=scoring_model.signature(),
                input_example=pd.DataFrame({0: list(examples)}),
                pip_requirements=requirements,
            )
        if export_to is not None:  # a read-only or full model folder: one line
            folder = Path(export_to).parent
            with output_faults("model folder", folder), paths.atomic_write(export_to) as partial:
                shutil.copyfile(keras_file, partial)
        with server_errors("logging the model"):
            mlflow.set_tag(SOURCE_TAG, source)
            mlflow.log_artifacts(str(local), artifact_path=name)
    return f"runs:/{mlflow.active_run().info.run_id}/{name}"


@contextlib.contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    """Hide MLflow's warning that a Python object is pickled: the pickle holds only a
    reference to lib.tracking.scoring_model's class (loaded from the model's own code), and the
    warning would be stderr in every train notebook."""

    def keep(record: logging.LogRecord) -> bool:
        return "serialized using CloudPickle" not in record.getMessage()

    logger = logging.getLogger("mlflow.pyfunc")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@contextlib.contextmanager
def no_artifact_progress_bar() -> Iterator[None]:
    """Turn MLflow's artifact progress bar off for the block (MLflow's own setting): saving
    the pyfunc model "downloads" its artifacts, the local ``.keras`` file, into the model's
    folder, which would draw a "Downloading artifacts" bar in every train notebook."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as setting

    saved = os.environ.get(setting.name)
    os.environ[setting.name] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(setting.name, None)
        else:
            os.environ[setting.name] = saved


def log_notebook(
    tracking_uri: str,
    run_id: str,
    files: list[Path],
    failed: bool = False,
    error: str | None = None,
    *,
    status: str | None = None,
) -> None:
    """Attach an executed notebook (and its HTML) to its run, then end the run as
    ``status`` says (FAILED, or KILLED: pruned or interrupted; ``failed`` is FAILED), with
    ``error`` as its tag ``notebook_error`` (FAILED) or ``notebook_stopped`` (KILLED). A
    succeeded execution's run is left as its notebook left it."""
    import mlflow

    status = status or ("FAILED" if failed else None)
    client = mlflow.MlflowClient(tracking_uri)
    try:
        for path in files:
            if path and Path(path).exists():
                client.log_artifact(run_id, str(path), artifact_path="notebook")
    finally:  # an artifact store that refuses the files must not leave the run RUNNING
        if status in ("FAILED", "KILLED"):
            if error:
                tag = "notebook_error" if status == "FAILED" else "notebook_stopped"
                client.set_tag(run_id, tag, error[:5000])
            client.set_terminated(run_id, status=status)


# The scraps through which a notebook tells the runner which MLflow run is its own: the
# runner's hook logs the executed notebook (and its HTML) to that run.
RUN_ID_SCRAP = "mlflow_run_id"
TRACKING_URI_SCRAP = "mlflow_tracking_uri"


def glue_run(run_id: str, tracking_uri: str) -> None:
    """Glue the notebook's MLflow run (and its store, without credentials) for the runner.
    Call it as soon as the run exists, so that a later failing cell still has its notebook
    logged to the run."""
    import scrapbook as sb

    sb.glue(RUN_ID_SCRAP, run_id)
    sb.glue(TRACKING_URI_SCRAP, public_uri(tracking_uri))
