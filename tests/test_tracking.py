import mlflow
import pytest

from lib import tracking


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
