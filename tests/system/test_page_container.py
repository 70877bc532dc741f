"""review-page in its image, run as Polyaxon runs the service on Kubernetes.

polyaxonfiles/review-page.yml goes through Polyaxon's own parser, compiler and resolver
(tests/support/polyaxon_render.py): the page is served under the service's base path
(``{{ globals.base_url }}``), ready on ``<base>/_stcore/health``, with the restricted pod
profile and the credentials from the secret. Its pod runs in the CPU training image
(tests/support/kubelet.py: tini as PID 1, uid 2222, a read-only root filesystem, /tmp an
emptyDir, no capabilities) on the host's network, serving the champion registered on the
test MLflow server (basic auth) with its artifacts in the GCS emulator. The page answers
through the base path: its health, its HTML, and a review scored in Chromium (Streamlit's
assets and WebSocket under the prefix). The password shows nowhere: not in the pod's argv,
its log or the page.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest

from lib.tracking import registry
from tests.support import kubelet, logged_models
from tests.support import polyaxon_render as plx
from tests.support.images import built_image
from tests.support.page_browser import chromium_page, open_page, shot, submit

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.usefixtures("docker_engine")]
FILE = plx.POLYAXONFILES / "review-page.yml"
HOST = "127.0.0.1"
START_S = 300.0  # the image's first TensorFlow import and the model load, on 2 cores


def _wait_health(url: str, container: kubelet.Container) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if not container.state().get("Running"):
            pytest.fail(f"the page's container exited:\n{container.logs()[-4000:]}")
        time.sleep(1)
    pytest.fail(f"the page did not answer at {url} in {START_S:.0f} s:\n{container.logs()[-4000:]}")


def test_the_page_serves_the_champion_under_its_base_path_in_the_image(
    trained_model, mlflow_tracking_env, gcs_env, tmp_path, monkeypatch
):
    server, emulator = mlflow_tracking_env, gcs_env
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    name = f"page-{uuid.uuid4().hex[:8]}"
    model_uri = logged_models.log_model(server.url, trained_model, experiment=name)
    version = registry.register(model_uri, name, {"test_accuracy": "0.75"}, tracking_uri=server.url)
    registry.set_alias(name, registry.CHAMPION, version.version, tracking_uri=server.url)

    image = built_image("model-training-cpu")
    job = plx.render_job(
        FILE,
        {
            "DOCKER_IMAGE": image,
            "MODEL_URI": f"models:/{name}@champion",
            "MLFLOW_TRACKING_URI": server.url,
        },
    )
    base = job.contexts["globals"]["base_url"]
    with socket.socket() as sock:
        if sock.connect_ex((HOST, 8501)) == 0:
            pytest.fail(f"port 8501 on {HOST} is taken: the pod's page listens there")
    container, argv = kubelet.start_service(job, image, "imdb-test-page-pod", server, emulator.url)
    try:
        url = f"http://{HOST}:8501{base}"
        _wait_health(f"{url}/_stcore/health", container)
        with urllib.request.urlopen(f"{url}/", timeout=10) as answer:
            html = answer.read().decode()
        assert answer.status == 200 and server.password not in html
        for page in chromium_page():
            open_page(page, f"{url}/")
            panel = page.locator("table.model-info").inner_text()
            assert name in panel and "champion" in panel and "0.7500" in panel
            href = page.locator("table.model-info a").get_attribute("href")
            assert href.startswith(server.url.rstrip("/") + "/#/experiments/")
            submit(page, "A wonderful film: superb and brilliant, I loved it.")
            assert page.locator(".verdict .label").inner_text() in ("positive", "negative")
            assert page.locator(".review mark").count() > 0
            assert server.password not in page.content()
            shot(page, "polyaxon-service")
        logs = container.logs()
        assert server.password not in logs and server.password not in " ".join(argv)
        assert "Traceback" not in logs
    finally:
        container.remove()
