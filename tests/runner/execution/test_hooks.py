"""runner.execution.hooks: the executed notebook goes to the MLflow run that the notebook glued."""

from pathlib import Path

import mlflow
import pytest

from runner.execution.execute import Execution
from runner.execution.hooks import default_hooks, log_notebook_to_mlflow


def _execution(tmp_path: Path, scraps: dict, error: str | None = None, **kw) -> Execution:
    notebook = tmp_path / "train.ipynb"
    notebook.write_text("{}")
    html = tmp_path / "train.html"
    html.write_text("<html></html>")
    return Execution(
        stage="train",
        parameters={},
        output_path=notebook,
        html_path=html,
        error=error,
        scraps=scraps,
        **kw,
    )


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("hooks", artifact_location=str(tmp_path / "art"))
    return uri, client, experiment


def _artifacts(client, run_id: str) -> list[str]:
    return sorted(f.path for f in client.list_artifacts(run_id, "notebook"))


@pytest.mark.slow
def test_a_succeeded_execution_logs_its_notebook_and_html_and_leaves_the_status(tmp_path, store):
    uri, client, experiment = store
    run = client.create_run(experiment)
    log_notebook_to_mlflow(
        _execution(tmp_path, {"mlflow_run_id": run.info.run_id, "mlflow_tracking_uri": uri})
    )
    assert _artifacts(client, run.info.run_id) == ["notebook/train.html", "notebook/train.ipynb"]
    assert client.get_run(run.info.run_id).info.status == "RUNNING"


@pytest.mark.slow
def test_a_failed_execution_marks_its_run_failed_with_the_error(tmp_path, store):
    uri, client, experiment = store
    run = client.create_run(experiment)
    scraps = {"mlflow_run_id": run.info.run_id, "mlflow_tracking_uri": uri}
    log_notebook_to_mlflow(_execution(tmp_path, scraps, error="cell 7: ValueError: boom"))
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["notebook_error"] == "cell 7: ValueError: boom"
    assert _artifacts(client, run.info.run_id) == ["notebook/train.html", "notebook/train.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("pruned", "cell 10: TrialPruned: pruned at epoch 2"),
        ("interrupted", "interrupted (cell 9)"),
    ],
)
def test_a_pruned_or_interrupted_execution_ends_its_run_killed(tmp_path, store, how, error):
    uri, client, experiment = store
    run = client.create_run(experiment)
    scraps = {"mlflow_run_id": run.info.run_id, "mlflow_tracking_uri": uri}
    log_notebook_to_mlflow(_execution(tmp_path, scraps, error=error, **{how: True}))
    got = client.get_run(run.info.run_id)
    assert got.info.status == "KILLED"
    assert got.data.tags["notebook_stopped"] == error and "notebook_error" not in got.data.tags
    assert _artifacts(client, run.info.run_id) == ["notebook/train.html", "notebook/train.ipynb"]


def test_an_executions_status_is_mlflows_word_for_how_it_ended(tmp_path):
    assert _execution(tmp_path, {}).status == "FINISHED"
    assert _execution(tmp_path, {}, error="cell 3: ValueError: x").status == "FAILED"
    assert _execution(tmp_path, {}, error="timed out after 5 s (cell 3)").status == "FAILED"
    assert _execution(tmp_path, {}, error="cell 3: TrialPruned: p", pruned=True).status == "KILLED"
    assert _execution(tmp_path, {}, error="interrupted", interrupted=True).status == "KILLED"


def test_an_execution_without_a_run_opens_no_store(tmp_path, monkeypatch):
    # No run id glued (tracking off, or the notebook failed before its run): nothing to log,
    # and no store is created for it.
    db = tmp_path / "would-be.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    log_notebook_to_mlflow(_execution(tmp_path, {"mlflow_tracking_uri": f"sqlite:///{db}"}))
    assert not db.exists()


def test_the_default_hooks_log_the_notebook():
    assert default_hooks() == [log_notebook_to_mlflow]
