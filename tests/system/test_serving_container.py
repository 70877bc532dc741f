"""The serving image (docker/model-serving.Dockerfile) run as a restricted pod, answering
``POST /invocations`` from the host with ``python -m runner serve`` (MLflow's scoring app with
limits), as polyaxonfiles/serve-model.yml runs it.

The image holds the project's lib and runner but no training tool (papermill, Jupyter,
Optuna, scikit-learn). Two ways in:

* a model logged to a local store, downloaded and mounted read-only, served with
  tests/support/images.py's pod profile (uid 2222, read-only root, /tmp a tmpfs, no capabilities) on
  Docker's bridge network with the port published on 127.0.0.1; the limits hold there as on
  the host (tests/system/test_serving_limits.py): a body declared over the limit gets 413, a
  deeply nested one 400, a stalled client is cut with 408, and a good request is answered
  after each;
* the serve-model service itself: its pod as Polyaxon's converter makes it
  (polyaxonfiles/serve-model.yml, tests/support/kubelet.py), serving ``models:/NAME@champion``
  from the
  MLflow server with basic auth, the version's artifacts in the GCS emulator
  (tests/support/services.py), on the host's network (the pod's port 5000).

Each answers raw review strings with the in-process model's probabilities.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lib.tracking import registry
from tests.support import bad_clients, kubelet, logged_models
from tests.support import polyaxon_render as plx
from tests.support.images import POD_ARGS, built_image
from tests.support.scoring_server import (
    HOST,
    TRAINING_TOOLS,
    free_port,
    post_json,
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("docker_engine")]

REVIEWS = ["A wonderful film.", "Dull."]
MOUNT = "/models/champion"
START_S = 240.0  # the image's first TensorFlow import and the model load, on 2 cores
STALL_S = 3.0


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:2])} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def _logs(name: str) -> str:
    done = _docker("logs", name, check=False)
    return (done.stdout + done.stderr)[-4000:]


def _ready(url: str, name: str) -> None:
    def alive() -> bool:
        state = _docker("inspect", "-f", "{{.State.Running}}", name, check=False)
        return state.stdout.strip() == "true"

    try:
        wait_ready(url, timeout_s=START_S, alive=alive)
    except AssertionError as error:
        pytest.fail(f"{error}; the container's log:\n{_logs(name)}")


def _in_process(model) -> np.ndarray:
    return np.asarray(model.predict(np.array(REVIEWS, dtype=object), verbose=0)).reshape(-1)


def _answers_in_process(url: str, model) -> None:
    status, body = post_json(f"{url}/invocations", {"inputs": REVIEWS})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], _in_process(model), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def trained(trained_model):
    """A small exported model (raw strings in, P(positive) out): the session's."""
    return trained_model


def test_the_image_serves_a_mounted_model_within_the_limits_without_training_tools(
    trained, tmp_path
):
    image = built_image("model-serving")
    names = ["lib", "runner", *sorted(TRAINING_TOOLS)]
    found = _docker(
        "run", "--rm", *POD_ARGS, "--network", "none", "--entrypoint", "python", image,
        "-c", f"import importlib.util as u; print([n for n in {names!r} if u.find_spec(n)])",
    )  # fmt: skip
    assert found.stdout.strip() == "['lib', 'runner']"

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROJECT_ROOT", str(tmp_path))
        model_uri = logged_models.log_model(store, trained)
        local = Path(mlflow.artifacts.download_artifacts(model_uri, tracking_uri=store))
    for path in [local, *local.rglob("*")]:  # readable by the pod's user
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = f"imdb-test-serve-{uuid.uuid4().hex[:8]}"
    port = free_port()
    _docker(
        "run", "--detach", "--name", name, *POD_ARGS,
        "--publish", f"{HOST}:{port}:5000", "--volume", f"{local}:{MOUNT}:ro", image,
        "python", "-m", "runner", "serve", "--model", MOUNT, "--host", "0.0.0.0",
        "--port", "5000", "--stall-timeout", str(STALL_S),
    )  # fmt: skip
    try:
        url = f"http://{HOST}:{port}"
        _ready(url, name)
        _answers_in_process(url, trained)
        status, body = post_json(f"{url}/invocations", b"not json")
        assert status == 400 and "valid JSON" in body["message"], body
        _answers_in_process(url, trained)
        assert bad_clients.declared_too_large(url).status == 413
        _answers_in_process(url, trained)
        status, body = post_json(f"{url}/invocations", bad_clients.nested(100_000))
        assert status == 400 and "levels deep" in body["message"], body
        _answers_in_process(url, trained)
        stalled = bad_clients.stalled(url, "headers")
        _answers_in_process(url, trained)  # while it stalls
        answer = bad_clients.answer_of_stalled(*stalled)
        assert answer.status == 408 and answer.seconds < STALL_S + 5, answer.raw[:300]
        _answers_in_process(url, trained)
        # Nothing was written outside /tmp but the mount point the engine made.
        changed = [line.split(" ", 1)[1] for line in _docker("diff", name).stdout.splitlines()]
        assert [p for p in changed if not Path(MOUNT).is_relative_to(p)] == []
    finally:
        _docker("rm", "--force", name, check=False)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


@pytest.mark.services
def test_the_serve_model_pod_serves_the_champion_from_mlflow_and_gcs(
    trained, mlflow_tracking_env, gcs_env, tmp_path, monkeypatch
):
    server, emulator = mlflow_tracking_env, gcs_env
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    name = f"serving-{uuid.uuid4().hex[:8]}"
    model_uri = logged_models.log_model(server.url, trained, experiment=name)
    version = registry.register(model_uri, name, {}, tracking_uri=server.url)
    registry.set_alias(name, registry.CHAMPION, version.version, tracking_uri=server.url)
    assert registry.resolve(name, alias="champion").source.startswith("gs://")

    image = built_image("model-serving")
    job = plx.render_job(
        plx.POLYAXONFILES / "serve-model.yml",
        {
            "DOCKER_IMAGE": image,
            "MODEL_URI": f"models:/{name}@champion",
            "MLFLOW_TRACKING_URI": server.url,
        },
    )
    (port,) = job.compiled.run.ports
    if not _port_free(port):
        pytest.fail(f"port {port} on {HOST} is taken: the pod's server listens there")
    container, argv = kubelet.start_service(job, image, "imdb-test-serve-pod", server, emulator.url)
    try:
        url = f"http://{HOST}:{port}"
        _ready(url, container.name)
        status, body = post_json(f"{url}/invocations", {"inputs": REVIEWS})
        assert status == 200, body
        np.testing.assert_allclose(body["predictions"], _in_process(trained), rtol=1e-5, atol=1e-6)
        logs = container.logs()
        assert server.password not in logs and server.password not in " ".join(argv)
    finally:
        container.remove()
