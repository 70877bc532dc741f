"""The stages in their images, run as Polyaxon runs them on Kubernetes.

Each job's pod comes from the polyaxonfile through Polyaxon's own compiler and converter
(tests/support/polyaxon_render.py) and runs in the image built from the matching Dockerfile
(tests/support/images.py) with ``docker run`` set up from the pod spec alone
(tests/support/kubelet.py):
tini as PID 1, uid 2222, a read-only root filesystem, an emptyDir at /tmp, no capabilities.
Host folders stand for the shared data volume (/polyaxon-v1-data) and the artifacts context
(/plx-context/artifacts, where a run's outputs go). Prep has no network; training reaches the
MLflow server with basic auth, the GCS emulator (tests/support/services.py) and PostgreSQL
(tests/support/postgres.py) on the host through the host's network.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import mlflow
import optuna
import pyarrow.parquet as pq
import pytest
from google.cloud import storage as gcs
from optuna.trial import TrialState

from lib.data import prep
from tests.support import kubelet
from tests.support import polyaxon_render as plx
from tests.support.datagen import make_raw_dir
from tests.support.images import built_image
from tests.support.pods import DATA, POD_UID, Volumes, pod_name, run_job, stray_writes
from tests.support.services import BUCKET
from tests.support.signals import cell_running

pytestmark = [pytest.mark.slow, pytest.mark.services]
FILES = plx.POLYAXONFILES
RAW = "imdb-sentiment/data/raw/aclImdb"  # the polyaxonfiles' defaults, under DATA
PROCESSED = "imdb-sentiment/data/processed"
SMALL = {"epochs": 2, "bs": 16}


@pytest.fixture
def containers():
    """Containers a test started, removed when it ends."""
    started: list[kubelet.Container] = []
    yield started
    for container in started:
        container.remove()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, docker_engine):
    """process-data run once in the data-prep image on a volume holding small raw data."""
    volumes = Volumes(tmp_path_factory.mktemp("pods"))
    make_raw_dir(volumes.data / RAW, per_label=40, words=40)
    volumes.hand_to(POD_UID)
    image = built_image("data-prep")
    job = plx.render_job(FILES / "process-data.yml", {"DOCKER_IMAGE": image})
    before = volumes.snapshot()
    container = run_job(job, image, volumes, pod_name("prep"))
    try:
        code, logs = container.wait(), container.logs()
        allowed = [volumes.data / PROCESSED, volumes.outputs(job)]
        stray = stray_writes(volumes.snapshot() - before, allowed, container)
    finally:
        container.remove()
    new = volumes.snapshot() - before
    return {"volumes": volumes, "job": job, "code": code, "logs": logs, "new": new, "stray": stray}


def test_process_data_runs_in_its_image_as_a_restricted_pod(prepared):
    volumes, job = prepared["volumes"], prepared["job"]
    assert prepared["code"] == 0, prepared["logs"][-5000:]
    assert "prep succeeded" in prepared["logs"]
    processed = volumes.data / PROCESSED
    assert prep.is_processed_dir(processed)
    assert pq.read_table(processed / "train.parquet").num_rows == 80
    notebook = volumes.outputs(job) / "notebook"
    assert (notebook / "prep.ipynb").is_file() and (notebook / "prep.html").is_file()
    # It wrote only where it was told: the processed folder and this run's outputs; nothing
    # in the image's root filesystem (read-only: the project folder, HOME, the caches).
    assert prepared["stray"] == []
    assert {p.stat().st_uid for p in prepared["new"]} == {POD_UID}


def test_a_data_set_written_by_the_pod_is_readable_by_another_uid(prepared):
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes = prepared["volumes"]
    read = (
        "import json, pyarrow.parquet as pq, sys; from lib.data import prep; d = sys.argv[1]; "
        "assert prep.is_processed_dir(d); m = prep.read_manifest(d); "
        "print(json.dumps([pq.read_table(f'{d}/{s}.parquet').num_rows for s in ('train', 'test')]))"
    )
    out = kubelet.docker(
        "run",
        "--rm",
        "--user",
        "3333:3333",
        "--read-only",
        "--network",
        "none",
        "--volume",
        f"{volumes.data}:{DATA}:ro",
        "--entrypoint",
        "python",
        built_image("data-prep"),
        "-c",
        read,
        f"{DATA}/{PROCESSED}",
    )
    assert json.loads(out.strip().splitlines()[-1]) == [80, 80]


def _train_secrets(server) -> dict[tuple[str, str], str]:
    return {
        ("mlflow-credentials", "username"): server.username,
        ("mlflow-credentials", "password"): server.password,
    }


def _files_holding(text: str, roots: list[Path]) -> list[Path]:
    return [
        p
        for root in roots
        for p in root.rglob("*")
        if p.is_file() and text.encode() in p.read_bytes()
    ]


def test_train_model_cpu_tracks_to_mlflow_and_gcs_and_leaks_no_password(
    prepared, containers, mlflow_tracking_env, gcs_env
):
    mlflow_server, gcs_emulator = mlflow_tracking_env, gcs_env
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes, image = prepared["volumes"], built_image("model-training-cpu")
    experiment = f"containers-{uuid.uuid4().hex[:8]}"
    job = plx.render_job(
        FILES / "train-model-cpu.yml",
        {
            "DOCKER_IMAGE": image,
            "SETUP_MLFLOW": True,
            "MLFLOW_TRACKING_URI": mlflow_server.url,
            "MLFLOW_EXP_NAME": experiment,
            "NOTEBOOK_PARAMS": json.dumps(SMALL),
        },
    )
    # STORAGE_EMULATOR_HOST stands in for Google Cloud Storage; it is no secret.
    env = {"STORAGE_EMULATOR_HOST": gcs_emulator.url}
    before = volumes.snapshot()
    secrets = _train_secrets(mlflow_server)
    container = run_job(job, image, volumes, pod_name("train"), "host", secrets=secrets, env=env)
    containers.append(container)
    code, logs = container.wait(), container.logs()
    assert code == 0, logs[-5000:]
    assert "train succeeded" in logs
    assert stray_writes(volumes.snapshot() - before, [volumes.outputs(job)], container) == []

    (run,) = _runs(mlflow_server, experiment)
    assert run.info.status == "FINISHED" and run.data.tags["polyaxon_run_uuid"] == job.run_uuid
    names = [b.name for b in gcs.Client().list_blobs(BUCKET) if run.info.run_id in b.name]
    for wanted in (
        "notebook/train.ipynb",
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
        ".keras",
    ):
        assert any(n.endswith(wanted) for n in names), (wanted, names)
    outputs = volumes.outputs(job)
    assert (outputs / "notebook" / "train.ipynb").is_file()
    assert (outputs / "model" / "model.keras").is_file()  # MODEL_DIR: the run's outputs
    # The password reached the container (it logged in) and nothing it wrote.
    password = mlflow_server.password
    assert password not in logs
    assert _files_holding(password, [volumes.data, volumes.artifacts]) == []
    blobs = [b for b in gcs.Client().list_blobs(BUCKET) if run.info.run_id in b.name]
    assert [b.name for b in blobs if password.encode() in b.download_as_bytes()] == []
    assert password not in json.dumps({**run.data.params, **run.data.tags})


def _local_store_job(image: str, store: str, experiment: str, params: dict) -> plx.RenderedJob:
    inputs = {"DOCKER_IMAGE": image, "SETUP_MLFLOW": True, "MLFLOW_TRACKING_URI": store}
    inputs.update(MLFLOW_EXP_NAME=experiment, NOTEBOOK_PARAMS=json.dumps(params))
    return plx.render_job(FILES / "train-model-cpu.yml", inputs)


def test_train_model_cpu_tracks_to_a_local_store_on_the_data_volume(prepared, containers):
    """A team without a tracking server: a SQLite store on the data volume, the project
    folder read-only. The run, its artifacts (beside the store) and the registered model
    are all on the volume."""
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes, image = prepared["volumes"], built_image("model-training-cpu")
    experiment = f"local-{uuid.uuid4().hex[:8]}"
    job = _local_store_job(image, f"sqlite:///{DATA}/mlflow.db", experiment, SMALL)
    before = volumes.snapshot()
    container = run_job(job, image, volumes, pod_name("local-store"))
    containers.append(container)
    code, logs = container.wait(), container.logs()
    assert code == 0, logs[-5000:]
    assert "train succeeded" in logs
    store, artifacts = volumes.data / "mlflow.db", volumes.data / "mlartifacts"
    allowed = [volumes.outputs(job), store, artifacts]
    assert stray_writes(volumes.snapshot() - before, allowed, container) == []

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    exp = client.get_experiment_by_name(experiment)
    assert exp.artifact_location == f"file://{DATA}/mlartifacts/{experiment}"
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["polyaxon_run_uuid"] == job.run_uuid
    logged = artifacts / experiment / run.info.run_id / "artifacts"
    for wanted in ("notebook/train.ipynb", "plots/learning_curves.png", "model/MLmodel"):
        assert (logged / wanted).is_file(), (wanted, sorted(logged.rglob("*")))
    versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
    assert [v.source for v in versions] == [f"{run.info.artifact_uri}/model"]


def test_an_unwritable_artifact_location_stops_training_before_it_starts(prepared, containers):
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes, image = prepared["volumes"], built_image("model-training-cpu")
    location = "/home/aisg/project/mlartifacts/x"  # in the image: read-only in the pod
    params = {**SMALL, "mlflow_artifact_location": location}
    job = _local_store_job(image, f"sqlite:///{DATA}/refused/mlflow.db", "refused", params)
    container = run_job(job, image, volumes, pod_name("refused"))
    containers.append(container)
    code, logs = container.wait(), container.logs()
    assert code == 2, logs[-5000:]
    assert f"cannot write the artifact location {location} of MLflow experiment" in logs
    assert "Read-only file system" in logs and "Traceback" not in logs
    # Refused in the tracking cell: the training cell never started.
    notebook = json.loads((volumes.outputs(job) / "notebook" / "train.ipynb").read_text())
    (fit,) = [c for c in notebook["cells"] if "models.build_model(" in "".join(c["source"])]
    assert not fit["metadata"].get("papermill", {}).get("start_time")
    client = mlflow.MlflowClient(f"sqlite:///{volumes.data / 'refused' / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]


def _runs(server, experiment: str):
    """The runs of ``experiment`` (the test is the server's admin: mlflow_tracking_env)."""
    client = mlflow.MlflowClient(server.url)
    exp = client.get_experiment_by_name(experiment)
    assert exp, f"no experiment {experiment} on the server"
    return client.search_runs([exp.experiment_id])


def test_two_hptuning_pods_share_one_study_on_postgres(
    prepared,
    containers,
    mlflow_tracking_env,
    gcs_env,
    postgres_server,
    monkeypatch,
):
    mlflow_server, gcs_emulator = mlflow_tracking_env, gcs_env
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes, image = prepared["volumes"], built_image("model-training-cpu")
    study, experiment, n_trials = f"study-{uuid.uuid4().hex[:8]}", f"tune-{uuid.uuid4().hex[:8]}", 3
    secrets = {**_train_secrets(mlflow_server)}
    secrets[("optuna-postgres", "password")] = postgres_server.password
    jobs = [
        plx.render_job(
            FILES / "train-model-cpu-hptuning.yml",
            {
                "DOCKER_IMAGE": image,
                "SETUP_MLFLOW": True,
                "MLFLOW_TRACKING_URI": mlflow_server.url,
                "MLFLOW_EXP_NAME": experiment,
                "STUDY_NAME": study,
                "TUNING_STORAGE": postgres_server.url(),
                "TUNING_WORKER": worker,
                "NOTEBOOK_PARAMS": json.dumps(
                    {
                        "n_trials": n_trials,
                        "sampler": {"name": "tpe", "seed": 1000 + worker},
                        "train_params": {"data_path": f"{DATA}/{PROCESSED}", **SMALL},
                    }
                ),
            },
        )
        for worker in range(2)
    ]
    # Two jobs on a 2-core machine: one core and a few GiB each.
    limits = kubelet.Limits(cpus=1.0, memory=5 * 2**30)
    env = {"STORAGE_EMULATOR_HOST": gcs_emulator.url}
    before = volumes.snapshot()
    for i, job in enumerate(jobs):
        name = pod_name(f"tune{i}")
        containers.append(run_job(job, image, volumes, name, "host", limits, secrets, env))
    codes = [c.wait() for c in containers]
    assert codes == [0, 0], [c.logs()[-3000:] for c in containers]
    outputs = [volumes.outputs(job) for job in jobs]
    for container in containers:
        assert stray_writes(volumes.snapshot() - before, outputs, container) == []
    for container in containers:
        logs = container.logs()
        assert postgres_server.password not in logs and mlflow_server.password not in logs

    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    trials = optuna.load_study(study_name=study, storage=postgres_server.url()).trials
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == n_trials
    children = [
        r
        for r in _runs(mlflow_server, experiment)
        if r.data.tags.get("mlflow.parentRunId") and r.info.status == "FINISHED"
    ]
    assert {int(r.data.tags["trial_number"]) for r in children} == complete
    assert {r.data.tags["hptuning_tag"] for r in children} == {study}
    for child in children:  # each trial's executed notebook is in its run
        blobs = gcs.Client().list_blobs(BUCKET)
        assert any(
            b.name.endswith("notebook/train.ipynb") and child.info.run_id in b.name for b in blobs
        ), child.data.tags["trial_number"]


def test_docker_stop_ends_a_training_pod_through_sigterm(prepared, containers):
    assert prepared["code"] == 0, prepared["logs"][-3000:]
    volumes, image = prepared["volumes"], built_image("model-training-cpu")
    params = {"epochs": 100000, "bs": 8}  # still training when it is stopped
    job = plx.render_job(
        FILES / "train-model-cpu.yml",
        {"DOCKER_IMAGE": image, "NOTEBOOK_PARAMS": json.dumps(params)},
    )
    container = run_job(job, image, volumes, pod_name("stop"))
    containers.append(container)
    notebook = volumes.outputs(job) / "notebook" / "train.ipynb"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and container.state()["Running"]:
        if cell_running(notebook, "models.build_model("):
            break
        time.sleep(0.5)
    assert container.state()["Running"], container.logs()[-3000:]
    kubelet.docker("stop", "--time", "60", container.name, timeout=120)
    state = container.state()
    logs = container.logs()
    # 143: the runner's own exit on SIGTERM, forwarded by tini; the engine's SIGKILL is 137.
    assert state["ExitCode"] == 143 and not state["OOMKilled"], logs[-3000:]
    assert logs.strip().splitlines()[-1] == "terminated (SIGTERM): train stopped"
