"""lib.tuning.parent_run: the study's MLflow parent run, in a local store under tmp."""

import mlflow
import pytest

from lib import tuning
from lib.core.errors import TrackingError
from tests.support.tuning import config, fake_trial


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _cfg(store, **params):
    return config(mlflow_tracking_uri=store, mlflow_exp_name="parent-test", **params)


def test_no_parent_run_when_mlflow_is_off():
    cfg = config(setup_mlflow=False)
    assert tuning.start_parent_run(cfg, tuning.open_study(cfg)) is None
    tuning.finish_parent_run(cfg, None, tuning.open_study(cfg).study, [], failed=False)


def test_the_parent_run_is_created_with_the_studys_settings_and_kept_in_the_study(tmp_path, store):
    cfg = _cfg(store, storage=f"sqlite:///{tmp_path / 'optuna.db'}", hptuning_tag="t-1")
    handle = tuning.open_study(cfg)
    run_id = tuning.start_parent_run(cfg, handle)
    assert handle.study.user_attrs["mlflow_parent_run_id"] == run_id
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.run_name == f"study-{cfg.study_name}" and run.info.status == "RUNNING"
    assert run.data.tags["hptuning_tag"] == "t-1"
    assert run.data.tags["study_name"] == cfg.study_name
    assert run.data.tags["stage"] == "tune"  # and what else it was made of: lib.tracking.provenance
    assert run.data.params["n_trials"] == "3" and '"val_split"' in run.data.params["search_space"]


def test_a_resumed_study_finds_its_parent_run_again(tmp_path, store):
    cfg = _cfg(store, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    first = tuning.start_parent_run(cfg, tuning.open_study(cfg))
    client = mlflow.MlflowClient(store)
    client.set_terminated(first, status="FAILED")  # the first process was killed
    again = tuning.open_study(cfg)
    assert not again.created
    assert tuning.start_parent_run(cfg, again) == first
    assert client.get_run(first).info.status == "RUNNING"


def test_a_parent_run_missing_from_the_store_is_replaced(tmp_path, store):
    cfg = _cfg(store, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    handle = tuning.open_study(cfg)
    handle.study.set_user_attr("mlflow_parent_run_id", "0" * 32)  # from another store
    run_id = tuning.start_parent_run(cfg, handle)
    assert run_id != "0" * 32 and handle.study.user_attrs["mlflow_parent_run_id"] == run_id


def test_finishing_logs_the_files_and_counts_and_ends_the_run(tmp_path, store):
    cfg = _cfg(store, directions=["maximize"], objectives=["val_accuracy"], n_trials=2)
    handle = tuning.open_study(cfg)
    run_id = tuning.start_parent_run(cfg, handle)
    tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.05)
    table = tmp_path / "trials.csv"
    table.write_text("number\n0\n1\n")
    tuning.finish_parent_run(cfg, run_id, handle.study, [table, tmp_path / "none"], failed=True)
    client = mlflow.MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics["n_complete"] == 2 and run.data.metrics["n_failed"] == 0
    assert run.data.metrics["n_pruned"] == 0
    assert run.data.metrics["best_val_accuracy"] == handle.study.best_value
    assert [a.path for a in client.list_artifacts(run_id, "study")] == ["study/trials.csv"]


def test_an_unusable_store_is_a_tracking_error_before_anything_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = config(mlflow_tracking_uri=f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises(TrackingError, match="cannot create the MLflow store"):
        tuning.start_parent_run(cfg, tuning.open_study(cfg))


def test_the_studys_experiment_keeps_its_artifacts_beside_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = f"sqlite:///{tmp_path / 'volume' / 'mlflow.db'}"
    cfg = config(mlflow_tracking_uri=store, mlflow_exp_name="beside")
    run_id = tuning.start_parent_run(cfg, tuning.open_study(cfg))
    experiment = mlflow.MlflowClient(store).get_experiment_by_name("beside")
    assert experiment.artifact_location == (tmp_path / "volume" / "mlartifacts" / "beside").as_uri()
    assert mlflow.MlflowClient(store).get_run(run_id).info.experiment_id == experiment.experiment_id


def test_an_unwritable_artifact_location_is_refused_before_the_parent_run(store, read_only_dir):
    location = (read_only_dir / "tune").as_uri()
    cfg = _cfg(store, mlflow_artifact_location=location)
    handle = tuning.open_study(cfg)
    with pytest.raises(TrackingError, match=f"cannot write the artifact location {location} "):
        tuning.start_parent_run(cfg, handle)
    assert "mlflow_parent_run_id" not in handle.study.user_attrs
    assert mlflow.MlflowClient(store).get_experiment_by_name("parent-test") is None
