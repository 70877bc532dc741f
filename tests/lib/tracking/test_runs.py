from pathlib import Path

import mlflow
import pytest

from lib.core.errors import TrackingError
from lib.tracking import runs as tracking

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def local_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    if mlflow.active_run():
        mlflow.end_run()


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.resolve_tracking_uri("http://other:1") == "http://other:1"


def test_run_tags_from_parameter_or_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_HPTUNING_TAG", raising=False)
    monkeypatch.delenv("POLYAXON_RUN_UUID", raising=False)
    assert tracking.run_tags(None) == {}
    monkeypatch.setenv("MLFLOW_HPTUNING_TAG", "1641159546")
    monkeypatch.setenv("POLYAXON_RUN_UUID", "abc-123")
    assert tracking.run_tags(None) == {"hptuning_tag": "1641159546", "polyaxon_run_uuid": "abc-123"}
    assert tracking.run_tags("77", {"trial": 3})["hptuning_tag"] == "77"


def test_start_run_creates_the_experiment_with_its_artifact_location(local_store, tmp_path):
    location = (tmp_path / "artifacts" / "exp").as_uri()
    run = tracking.start_run(
        tracking_uri=local_store,
        experiment_name="exp",
        artifact_location=location,
        tags={"hptuning_tag": "5"},
    )
    experiment = mlflow.get_experiment_by_name("exp")
    assert experiment.artifact_location == location
    assert run.info.experiment_id == experiment.experiment_id
    tracking.log_params({"bs": 32, "api_key": "do-not-log", "model_params": {"a": 1}})
    tracking.log_history({"loss": [0.5, 0.3], "val_loss": [0.6, 0.4]})
    tracking.end_run()
    assert mlflow.active_run() is None
    client = mlflow.MlflowClient(local_store)
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"bs": "32", "model_params": "{'a': 1}"}
    assert stored.data.tags["hptuning_tag"] == "5"
    losses = client.get_metric_history(run.info.run_id, "epoch_val_loss")
    assert [(m.step, m.value) for m in losses] == [(0, 0.6), (1, 0.4)]


def test_default_local_experiment_gets_a_local_artifact_folder(local_store, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    tracking.start_run(tracking_uri=local_store, experiment_name="local-exp")
    mlflow.end_run()
    location = mlflow.get_experiment_by_name("local-exp").artifact_location
    assert location == (tmp_path / "mlartifacts" / "local-exp").as_uri()


def test_the_default_artifact_location_is_beside_a_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = tmp_path / "project"
    assert tracking.default_artifact_location("e", tracking.resolve_tracking_uri()) == (
        (project / "mlartifacts" / "e").as_uri()
    )
    assert tracking.default_artifact_location("e", "sqlite:///sub/m.db") == (
        (project / "sub" / "mlartifacts" / "e").as_uri()
    )
    assert tracking.default_artifact_location("e", "sqlite:////data/mlflow.db") == (
        "file:///data/mlartifacts/e"
    )
    assert tracking.default_artifact_location("e", "http://127.0.0.1:5000") is None


def test_a_store_on_a_volume_keeps_the_artifacts_there_with_a_read_only_project(
    read_only_dir, tmp_path, monkeypatch
):
    """As in a pod: the project folder is read-only, the store is on a mounted volume."""
    monkeypatch.setenv("PROJECT_ROOT", str(read_only_dir))
    monkeypatch.chdir(read_only_dir)
    volume = tmp_path / "volume"
    store = f"sqlite:///{volume / 'mlflow.db'}"
    run = tracking.start_run(tracking_uri=store, experiment_name="on-volume")
    plot = tmp_path / "curves.png"
    plot.write_bytes(b"png")
    tracking.log_results({"test_accuracy": 0.5}, [("plots", plot)])
    tracking.end_run()
    location = volume / "mlartifacts" / "on-volume"
    assert mlflow.get_experiment_by_name("on-volume").artifact_location == location.as_uri()
    logged = location / run.info.run_id / "artifacts" / "plots" / "curves.png"
    assert logged.read_bytes() == b"png"
    stored = mlflow.MlflowClient(store).get_run(run.info.run_id)
    assert stored.info.status == "FINISHED" and stored.data.metrics["test_accuracy"] == 0.5


def test_an_unwritable_artifact_location_stops_start_run_before_the_experiment(
    local_store, read_only_dir
):
    location = (read_only_dir / "exp").as_uri()
    with pytest.raises(TrackingError, match=f"cannot write the artifact location {location} "):
        tracking.start_run(
            tracking_uri=local_store, experiment_name="exp", artifact_location=location
        )
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient(local_store).get_experiment_by_name("exp") is None


def test_an_experiment_recorded_with_an_unwritable_location_is_refused_before_any_run(
    local_store, read_only_dir
):
    location = (read_only_dir / "old").as_uri()
    client = mlflow.MlflowClient(local_store)
    experiment_id = client.create_experiment("old", artifact_location=location)
    with pytest.raises(TrackingError) as info:
        tracking.start_run(tracking_uri=local_store, experiment_name="old")
    message = str(info.value)
    assert f"cannot write the artifact location {location} of MLflow experiment 'old'" in message
    assert "use a new mlflow_exp_name" in message and "\n" not in message
    assert mlflow.active_run() is None and client.search_runs([experiment_id]) == []


def test_an_artifact_that_cannot_be_stored_names_the_artifact_location(local_store, tmp_path):
    run = tracking.start_run(
        tracking_uri=local_store,
        experiment_name="blocked",
        artifact_location=(tmp_path / "art").as_uri(),
    )
    (tmp_path / "art" / run.info.run_id).write_text("a file where the run's folder goes")
    plot = tmp_path / "curves.png"
    plot.write_bytes(b"png")
    with pytest.raises(TrackingError) as info:
        tracking.log_results({}, [("plots", plot)])
    message = str(info.value)
    assert message.startswith(
        f"cannot store the MLflow artifacts at {(tmp_path / 'art').as_uri()}/{run.info.run_id}/"
    )
    assert "store at" not in message and "\n" not in message


def test_only_setup_experiment_creates_experiments():
    """Every experiment (train, tune's parent run, promotion's) gets its artifact location
    and its check from tracking.setup_experiment."""
    callers = [
        str(path.relative_to(ROOT))
        for folder in ("lib", "runner", "notebooks")
        for path in (ROOT / folder).rglob("*.*")
        if path.suffix in (".py", ".ipynb")
        and any(
            call in path.read_text(encoding="utf-8")
            for call in ("create_experiment(", "set_experiment(")
        )
    ]
    assert callers == ["lib/tracking/runs.py"]


def test_log_notebook_attaches_files_and_marks_failure(local_store, tmp_path):
    run = tracking.start_run(tracking_uri=local_store, experiment_name="nb")
    run_id = run.info.run_id
    mlflow.end_run()
    nb, html = tmp_path / "train.ipynb", tmp_path / "train.html"
    nb.write_text("{}")
    html.write_text("<html></html>")
    tracking.log_notebook(local_store, run_id, [nb, html], failed=True, error="cell 5: boom")
    client = mlflow.MlflowClient(local_store)
    names = sorted(a.path for a in client.list_artifacts(run_id, "notebook"))
    assert names == ["notebook/train.html", "notebook/train.ipynb"]
    stored = client.get_run(run_id)
    assert stored.info.status == "FAILED" and stored.data.tags["notebook_error"] == "cell 5: boom"
