"""batch-infer in its image, run as Polyaxon runs it on Kubernetes.

The pod comes from polyaxonfiles/batch-infer.yml through Polyaxon's own compiler and converter
(tests/support/polyaxon_render.py) and runs in the CPU training image (tests/support/images.py)
with ``docker run`` set up from the pod spec alone (tests/support/kubelet.py): tini as PID 1,
uid 2222, a read-only root filesystem, an emptyDir at /tmp, no capabilities. A folder of
reviews on the data volume (tests/support/pods.py) is scored with a model registered on the
test MLflow server (basic auth) whose artifacts lie in the GCS emulator
(tests/support/services.py), both reached through the host's network; the scores go to the
data volume, and a second job over the same output is refused before any kernel starts.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from google.cloud import storage as gcs

from lib.tracking import registry
from tests.support import logged_models
from tests.support import polyaxon_render as plx
from tests.support.datagen import make_raw_dir, write_review
from tests.support.images import built_image
from tests.support.pods import DATA, POD_UID, Volumes, pod_name, run_job, stray_writes
from tests.support.services import BUCKET

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.usefixtures("docker_engine")]
FILE = plx.POLYAXONFILES / "batch-infer.yml"
REVIEWS = "imdb-sentiment/data/new-reviews"
SCORES = "imdb-sentiment/scores/new-reviews.jsonl"


def _reviews(folder: Path) -> dict[str, str]:
    """Each readable review's id (its path relative to the folder) and text, by id."""
    found = {}
    for path in sorted(folder.rglob("*.txt")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if text.strip():
            found[path.relative_to(folder).as_posix()] = text
    return found


def _files_holding(text: str, roots: list[Path]) -> list[Path]:
    return [
        p
        for root in roots
        for p in root.rglob("*")
        if p.is_file() and text.encode() in p.read_bytes()
    ]


def test_batch_infer_scores_a_folder_on_the_volume_with_a_registered_model(
    trained_model, mlflow_tracking_env, gcs_env, tmp_path, monkeypatch
):
    server, emulator = mlflow_tracking_env, gcs_env
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    name = f"infer-{uuid.uuid4().hex[:8]}"
    model_uri = logged_models.log_model(server.url, trained_model, experiment=name)
    version = registry.register(model_uri, name, {}, tracking_uri=server.url).version
    registry.set_alias(name, registry.CHAMPION, version, tracking_uri=server.url)
    assert registry.resolve(name, alias="champion").source.startswith("gs://")

    volumes = Volumes(tmp_path / "pods")
    folder = make_raw_dir(volumes.data / REVIEWS, per_label=15, words=40)  # aclImdb: labelled
    write_review(folder, "test", 0, 900, 2, "")  # skipped: empty
    write_review(folder, "test", 1, 901, 9, b"bad \xff byte")  # skipped: not UTF-8
    reviews = _reviews(folder)
    assert len(reviews) == 60
    volumes.hand_to(POD_UID)

    image = built_image("model-training-cpu")
    experiment = f"batch-{uuid.uuid4().hex[:8]}"
    inputs = {
        "DOCKER_IMAGE": image,
        "MODEL_URI": f"models:/{name}@champion",
        "INPUT_PATH": f"{DATA}/{REVIEWS}",
        "OUTPUT_PATH": f"{DATA}/{SCORES}",
        "SETUP_MLFLOW": True,
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_EXP_NAME": experiment,
    }
    job = plx.render_job(FILE, inputs)
    secrets = {
        ("mlflow-credentials", "username"): server.username,
        ("mlflow-credentials", "password"): server.password,
    }
    # STORAGE_EMULATOR_HOST stands in for Google Cloud Storage; it is no secret.
    env = {"STORAGE_EMULATOR_HOST": emulator.url}
    before = volumes.snapshot()
    container = run_job(job, image, volumes, pod_name("infer"), "host", secrets=secrets, env=env)
    try:
        code, logs = container.wait(), container.logs()
        assert code == 0, logs[-5000:]
        assert "infer succeeded" in logs
        # It wrote only the scores and this run's outputs; nothing in the image's root.
        allowed = [volumes.data / SCORES, volumes.outputs(job)]
        assert stray_writes(volumes.snapshot() - before, allowed, container) == []
    finally:
        container.remove()

    # One row per readable review, in the folder's order, scored as the model scores in process.
    rows = [json.loads(line) for line in (volumes.data / SCORES).read_text("utf-8").splitlines()]
    assert [row["id"] for row in rows] == list(reviews)
    assert {(row["model_name"], row["model_version"]) for row in rows} == {(name, version)}
    expected = trained_model.predict(np.array(list(reviews.values()), dtype=object), verbose=0)
    probabilities = np.array([row["probability"] for row in rows])
    np.testing.assert_allclose(probabilities, np.ravel(expected), rtol=1e-5, atol=1e-6)
    assert [row["label"] for row in rows] == [int(p >= 0.5) for p in probabilities]
    notebook = volumes.outputs(job) / "notebook"
    assert (notebook / "infer.ipynb").is_file() and (notebook / "infer.html").is_file()

    # One finished run: this job's, with the version the alias resolved to and the notebook.
    client = mlflow.MlflowClient(server.url)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["polyaxon_run_uuid"] == job.run_uuid
    params = run.data.params
    assert (params["model_version"], params["model_alias"]) == (version, "champion"), params
    metrics = run.data.metrics
    assert (metrics["reviews"], metrics["skipped_empty"], metrics["skipped_not_utf8"]) == (60, 1, 1)
    labels = np.array([0 if "/neg/" in review_id else 1 for review_id in reviews])
    accuracy = float(np.mean((probabilities >= 0.5) == labels))
    assert metrics["accuracy"] == pytest.approx(accuracy)
    blobs = [b.name for b in gcs.Client().list_blobs(BUCKET) if run.info.run_id in b.name]
    assert any(b.endswith("notebook/infer.ipynb") for b in blobs), blobs
    # The password reached the container (it logged in) and nothing it wrote.
    password = server.password
    assert password not in logs
    assert _files_holding(password, [volumes.data, volumes.artifacts]) == []
    assert password not in json.dumps({**params, **run.data.tags})

    # A second job onto the same output is refused before any kernel: the scores stay.
    scores = (volumes.data / SCORES).read_bytes()
    job = plx.render_job(FILE, inputs)
    container = run_job(
        job, image, volumes, pod_name("infer-again"), "host", secrets=secrets, env=env
    )
    try:
        code, logs = container.wait(), container.logs()
    finally:
        container.remove()
    assert code == 2, logs[-5000:]
    assert "overwrite" in logs and "Traceback" not in logs
    assert (volumes.data / SCORES).read_bytes() == scores
    assert not (volumes.outputs(job) / "notebook" / "infer.ipynb").exists()
