"""tools.tracking_stack.mlflow_server: MLflow with basic auth over the GCS emulator (the
session's servers, tests/support/services.py): up, every request but /health needs valid
credentials, runs and gs:// artifacts with them; the admin password never shorter than
MLflow allows nor written where a client reads it.
"""

import uuid

import pytest

from tests.support.services import BUCKET, http_status, mlflow_env, tracking_stack


@pytest.mark.services
@pytest.mark.slow
def test_the_stack_is_up_and_requires_auth(mlflow_server, gcs_emulator):
    assert http_status(gcs_emulator.url + "/") == 200
    assert http_status(mlflow_server.url + "/health") == 200
    search = mlflow_server.url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 401
    assert http_status(search, (mlflow_server.username, "wrong-password-123")) == 401
    assert http_status(search, (mlflow_server.username, mlflow_server.password)) == 200
    env = mlflow_env(mlflow_server)
    assert env == {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": mlflow_server.password,
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
    }
    # the password is in no log, config file or repr
    for path in mlflow_server.data_dir.iterdir():
        if path.suffix in {".log", ".ini"}:
            assert mlflow_server.password not in path.read_text(encoding="utf-8")
    assert mlflow_server.password not in repr(mlflow_server)


@pytest.mark.services
@pytest.mark.slow
def test_runs_and_gcs_artifacts_with_credentials(mlflow_tracking_env, tmp_path):
    from google.cloud import storage
    from mlflow import MlflowClient

    server = mlflow_tracking_env
    client = MlflowClient(tracking_uri=server.url)
    name = f"stack-test-{uuid.uuid4().hex[:8]}"
    location = tracking_stack.experiment_artifact_location(name, BUCKET)
    assert location == f"gs://{BUCKET}/mlflow-tracking-server/{name}"

    experiment_id = client.create_experiment(name, artifact_location=location)
    assert client.get_experiment(experiment_id).artifact_location == location
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.log_param(run_id, "embedding_dim", 16)
    client.log_metric(run_id, "val_accuracy", 0.875)
    artifact = tmp_path / "notes.txt"
    artifact.write_text("logged through the emulator", encoding="utf-8")
    client.log_artifact(run_id, str(artifact), artifact_path="docs")
    client.set_terminated(run_id)

    data = client.get_run(run_id).data
    assert data.params == {"embedding_dim": "16"}
    assert data.metrics == {"val_accuracy": 0.875}
    assert [f.path for f in client.list_artifacts(run_id, "docs")] == ["docs/notes.txt"]
    fetched = client.download_artifacts(run_id, "docs/notes.txt", str(tmp_path / "fetched"))
    assert open(fetched, encoding="utf-8").read() == "logged through the emulator"

    blob_name = f"mlflow-tracking-server/{name}/{run_id}/artifacts/docs/notes.txt"
    blobs = {
        b.name: b
        for b in storage.Client().list_blobs(BUCKET, prefix=f"mlflow-tracking-server/{name}/")
    }
    assert list(blobs) == [blob_name]
    assert blobs[blob_name].download_as_bytes() == b"logged through the emulator"

    # the server's default root is in the same bucket
    other = client.create_experiment(f"{name}-default-root")
    assert client.get_experiment(other).artifact_location == (
        f"{tracking_stack.artifact_root(BUCKET)}/{other}"
    )


@pytest.mark.services
@pytest.mark.slow
def test_wrong_password_is_rejected(mlflow_tracking_env, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password-123")
    client = MlflowClient(tracking_uri=mlflow_tracking_env.url)
    with pytest.raises(MlflowException) as info:
        client.create_experiment(f"rejected-{uuid.uuid4().hex[:8]}")
    assert "401" in str(info.value)
    assert "not authenticated" in str(info.value).lower()

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(MlflowException, match="401"):
        client.search_experiments()


def test_short_admin_password_is_refused_before_starting(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="at least 12"):
        tracking_stack.start_mlflow_server(tmp_path, password="short")
    assert not (tmp_path / "mlflow-server.log").exists()


def test_admin_password_from_env_or_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-environment")
    assert tracking_stack.admin_password(tmp_path) == ("from-the-environment", False)
    assert not (tmp_path / "admin_password").exists()
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD")
    generated, was_generated = tracking_stack.admin_password(tmp_path)
    assert was_generated and len(generated) >= 12
    assert (tmp_path / "admin_password").stat().st_mode & 0o777 == 0o600
    assert tracking_stack.admin_password(tmp_path) == (generated, True)  # reused


def test_auth_config_has_absolute_database_and_no_password(tmp_path):
    path = tracking_stack.write_auth_config(tmp_path, "admin")
    text = path.read_text(encoding="utf-8")
    assert f"database_uri = sqlite:///{tmp_path}/basic_auth.db" in text
    assert "admin_username = admin" in text
    assert "password" not in text.replace("admin_password", "")
