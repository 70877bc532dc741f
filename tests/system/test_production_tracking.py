"""The production tracking path, for real: the train notebook against an MLflow server with
basic auth and a GCS (emulator) artifact store, its failures, and secrets that never leak."""

import json
import os
import threading
import time
import uuid
from pathlib import Path

import mlflow
import nbformat
import pytest
import scrapbook as sb
from google.cloud import storage as gcs

from lib.data import prep
from runner.execution.execute import execute_stage
from runner.execution.hooks import default_hooks
from runner.stages import Stage
from tests.support.datagen import make_raw_dir
from tests.support.provenance import check_provenance
from tests.support.runner_process import error_traceback_shown, run_runner
from tests.support.services import BUCKET, tracking_stack

pytestmark = [pytest.mark.slow, pytest.mark.services]
ROOT = Path(__file__).resolve().parents[2]
FAST = {"epochs": 2, "bs": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("prod-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=40, words=40)], root / "processed")
    return root / "processed"


def _env(server, tmp_path, **overrides):
    env = {
        **os.environ,
        **server.env(),
        "LOG_DIR": str(tmp_path / "logs"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **overrides,
    }
    return {k: v for k, v in env.items() if v is not None}


def _runner(args, env):
    return run_runner(args, env)


def _train_args(data, tmp_path, *extra):
    return [
        "train",
        "-p",
        "data_path",
        str(data),
        "-p",
        "model_dir",
        str(tmp_path / "model"),
        "--output-dir",
        str(tmp_path / "run"),
        "-p",
        "epochs",
        "2",
        "-p",
        "bs",
        "16",
        *extra,
    ]


def _all_text(paths):
    for path in paths:
        for f in [path] if path.is_file() else path.rglob("*"):
            if f.is_file():
                yield f, f.read_bytes()


def test_remote_run_with_gcs_artifacts_and_no_password_anywhere(
    tmp_path, data, mlflow_server, gcs_emulator, monkeypatch
):
    password = mlflow_server.password  # generated per session: distinctive
    token = f"tok-{uuid.uuid4().hex}"  # another secret-looking variable's value
    for name, value in _env(mlflow_server, tmp_path, IMDB_API_TOKEN=token).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    name = f"prod-{uuid.uuid4().hex[:8]}"
    location = f"gs://{BUCKET}/mlflow-tracking-server/{name}"
    # The real train notebook, plus a cell that prints the whole environment.
    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import os\nprint(dict(os.environ))"))
    nb_path = tmp_path / "train_env.ipynb"
    nbformat.write(nb, nb_path)
    params = {
        "data_path": str(data),
        "model_dir": str(tmp_path / "model"),
        "mlflow_exp_name": name,
        "mlflow_artifact_location": location,
        **FAST,
    }
    execution = execute_stage(
        Stage("train", str(nb_path), ""), params, run_dir=tmp_path / "run", hooks=default_hooks()
    )
    assert execution.ok, execution.error

    client = mlflow.MlflowClient(
        os.environ["MLFLOW_TRACKING_URI"]
    )  # not an earlier test's set_tracking_uri
    assert client.get_experiment_by_name(name).artifact_location == location
    run_id = execution.scraps["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    check_provenance(client, run_id, "train", prep.read_manifest(data)["fingerprint"])
    # Every tag, parameter and artifact of the run, as the server gives them: no secret.
    secrets = (password.encode(), token.encode())
    recorded = json.dumps([run.data.tags, run.data.params]).encode()
    assert not [s for s in secrets if s in recorded]
    client.download_artifacts(run_id, "", str(tmp_path / "artifacts"))
    files = [f for f in (tmp_path / "artifacts").rglob("*") if f.is_file()]
    assert "provenance/environment.json" in {
        f.relative_to(tmp_path / "artifacts").as_posix() for f in files
    }
    assert [f for f in files for s in secrets if s in f.read_bytes()] == []
    blobs = list(gcs.Client().list_blobs(BUCKET, prefix=f"mlflow-tracking-server/{name}/"))
    names = [b.name for b in blobs]
    for wanted in (
        "notebook/train.ipynb",
        "notebook/train.html",
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
        ".keras",
    ):
        assert any(n.endswith(wanted) for n in names), (wanted, names)
    printed = (tmp_path / "run" / "train.ipynb").read_text()
    assert "MLFLOW_TRACKING_PASSWORD" in printed and "********" in printed

    texts = ["A wonderful, superb film.", "Awful and boring."]
    model_blob = next(n for n in names if n.endswith(".keras"))
    for model in (execution.scraps["model_uri"], f"gs://{BUCKET}/{model_blob}"):
        out = _runner(["predict", "--model", model, *texts], dict(os.environ))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0].startswith("positive")

    searched = [tmp_path, mlflow_server.data_dir]
    leaks = [str(f) for f, content in _all_text(searched) for s in secrets if s in content]
    for blob in gcs.Client().list_blobs(BUCKET):
        content = blob.download_as_bytes()
        leaks += [blob.name for s in secrets if s in content]
    assert leaks == []


def test_wrong_password_is_one_line_before_any_training(tmp_path, data, mlflow_server):
    env = _env(mlflow_server, tmp_path, MLFLOW_TRACKING_PASSWORD="not-the-password-123")
    result = _runner(_train_args(data, tmp_path), env)
    assert result.returncode == 2
    assert (
        f"the MLflow tracking server {mlflow_server.url} refused the login of user "
        f"'{mlflow_server.username}' (HTTP 401)"
    ) in result.stderr
    assert not error_traceback_shown(result.stderr) and "not-the-password-123" not in result.stderr
    assert not (tmp_path / "model").exists()


def test_a_missing_bucket_is_named_before_any_training(tmp_path, data, mlflow_server, gcs_emulator):
    env = _env(mlflow_server, tmp_path, STORAGE_EMULATOR_HOST=gcs_emulator.url)
    location = "gs://no-such-bucket-here/mlflow-tracking-server/x"
    args = _train_args(
        data,
        tmp_path,
        "-p",
        "mlflow_exp_name",
        f"nb-{uuid.uuid4().hex[:6]}",
        "-p",
        "mlflow_artifact_location",
        location,
    )
    result = _runner(args, env)
    assert result.returncode == 2
    assert "bucket 'no-such-bucket-here' does not exist" in result.stderr
    assert not (tmp_path / "model").exists()


def test_missing_credentials_name_the_bucket(tmp_path, data, mlflow_server):
    env = _env(
        mlflow_server,
        tmp_path,
        STORAGE_EMULATOR_HOST=None,
        GOOGLE_APPLICATION_CREDENTIALS=None,
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GCE_METADATA_IP="127.0.0.1:9",
        GCE_METADATA_HOST="127.0.0.1:9",
    )
    args = _train_args(
        data,
        tmp_path,
        "-p",
        "mlflow_exp_name",
        f"nc-{uuid.uuid4().hex[:6]}",
        "-p",
        "mlflow_artifact_location",
        f"gs://{BUCKET}/x",
    )
    result = _runner(args, env)
    assert result.returncode == 2
    assert f"cannot use bucket '{BUCKET}'" in result.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr


def test_server_lost_mid_run_then_back(tmp_path, data):
    server = tracking_stack.start_mlflow_server(tmp_path / "server")
    try:
        env = _env(server, tmp_path)
        client = mlflow.MlflowClient(server.url)
        os.environ["MLFLOW_TRACKING_USERNAME"] = server.username
        stopped = threading.Event()

        def stop_when_the_run_starts():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not stopped.is_set():
                try:
                    experiment = client.get_experiment_by_name("sentiment-classification")
                    if experiment and client.search_runs([experiment.experiment_id]):
                        server.stop()
                        stopped.set()
                        return
                except Exception:
                    pass
                time.sleep(0.2)

        os.environ["MLFLOW_TRACKING_PASSWORD"] = server.password
        try:
            watcher = threading.Thread(target=stop_when_the_run_starts)
            watcher.start()
            # Retried as users' runs are (MLflow's retries, lib.tracking.store_check's count),
            # without the waits between tries: the test is of the outcome, not the waits.
            lost = {**env, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}
            result = _runner(_train_args(data, tmp_path, "-p", "epochs", "30"), lost)
            stopped.set()
            watcher.join()
        finally:
            os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
            os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
        assert result.returncode == 2  # an unreachable store is the user's to fix
        assert "lost the MLflow tracking store at" in result.stderr, result.stderr[-2000:]
        assert (tmp_path / "run" / "train.ipynb").is_file()

        server = tracking_stack.start_mlflow_server(tmp_path / "server", port=server.port)
        again = _runner(_train_args(data, tmp_path / "second"), _env(server, tmp_path))
        assert again.returncode == 0, again.stderr
        run_id = (
            sb.read_notebook(str(tmp_path / "second" / "run" / "train.ipynb"))
            .scraps["mlflow_run_id"]
            .data
        )
        assert run_id
    finally:
        server.stop()


def test_credentials_in_the_tracking_uri_work_and_reach_no_file(
    tmp_path, data, mlflow_server, gcs_emulator, monkeypatch
):
    password = mlflow_server.password  # generated per session: distinctive
    url = mlflow_server.url
    with_credentials = url.replace("://", f"://{mlflow_server.username}:{password}@", 1)
    env = _env(
        mlflow_server,
        tmp_path,
        MLFLOW_TRACKING_URI=with_credentials,
        MLFLOW_TRACKING_USERNAME=None,
        MLFLOW_TRACKING_PASSWORD=None,
        STORAGE_EMULATOR_HOST=gcs_emulator.url,
    )
    name = f"uri-creds-{uuid.uuid4().hex[:8]}"
    result = _runner(_train_args(data, tmp_path, "-p", "mlflow_exp_name", name), env)
    assert result.returncode == 0, result.stderr[-3000:]

    # Logged, the executed notebook included (the runner's own client logged in too).
    for variable, value in mlflow_server.env().items():
        monkeypatch.setenv(variable, value)
    client = mlflow.MlflowClient(url)
    run_id = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps["mlflow_run_id"].data
    assert client.get_run(run_id).info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(run_id, "notebook")}
    assert logged == {"notebook/train.ipynb", "notebook/train.html"}
    notebook = (tmp_path / "run" / "train.ipynb").read_text()
    # MLflow's own "View run ... at: URL" line shows the URI without the credentials.
    assert f"at: {url}/#/experiments/" in notebook, notebook[-3000:]

    experiment = client.get_experiment_by_name(name)
    assert experiment.artifact_location.startswith(f"gs://{BUCKET}/")
    prefix = experiment.artifact_location.removeprefix(f"gs://{BUCKET}/")
    blobs = list(gcs.Client().list_blobs(BUCKET, prefix=prefix))
    assert any(b.name.endswith("notebook/train.ipynb") for b in blobs)
    leaks = [str(f) for f, content in _all_text([tmp_path]) if password.encode() in content]
    leaks += [b.name for b in blobs if password.encode() in b.download_as_bytes()]
    run = client.get_run(run_id)
    leaks += [k for k, v in {**run.data.params, **run.data.tags}.items() if password in v]
    assert leaks == []
    assert password not in result.stdout + result.stderr
