"""Fixtures for tests against the real tracking stack: a GCS emulator and MLflow with auth.

Both servers start once per test session (MLflow takes 20-40 s) and are stopped, whole
process groups, at the end. tests/conftest.py registers this module as a plugin
(``pytest_plugins``): a test asks for a fixture by name and is marked
``@pytest.mark.services``. Each is defined here once, so the suite never starts MLflow twice
in one process; under pytest-xdist each worker process starts its own. The servers never
change this process's environment; a test opts in with the function-scoped ``gcs_env`` /
``mlflow_tracking_env`` fixtures (monkeypatch, undone after the test), or with
``use_gcs_emulator(...)`` / ``mlflow_env(server)`` by hand.
"""

from __future__ import annotations

import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tools import tracking_stack

BUCKET = tracking_stack.DEFAULT_BUCKET


@contextmanager
def use_gcs_emulator(server) -> Iterator[None]:
    """Set STORAGE_EMULATOR_HOST to ``server``'s URL inside the block, then restore it."""
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = server.url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def mlflow_env(server) -> dict[str, str]:
    """MLFLOW_TRACKING_URI/USERNAME/PASSWORD and STORAGE_EMULATOR_HOST for ``server``."""
    return server.env()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory):
    """The GCS emulator (``.url``, ``.bucket``), with the bucket ``BUCKET`` created."""
    data_dir = tmp_path_factory.mktemp("gcs-emulator")
    server = tracking_stack.start_gcs_emulator(data_dir, bucket=BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, gcs_emulator):
    """MLflow with basic auth (``.url``, ``.username``, ``.password``).

    New experiments keep their artifacts in the emulator under
    ``gs://BUCKET/mlflow-tracking-server`` (the server's default artifact root; give
    ``artifact_location=tracking_stack.experiment_artifact_location(name)`` for the
    ``.../NAME`` layout); the admin password is random per session.
    """
    server = tracking_stack.start_mlflow_server(
        tmp_path_factory.mktemp("mlflow-server"),
        default_artifact_root=tracking_stack.artifact_root(BUCKET),
        storage_emulator_host=gcs_emulator.url,
        username="admin",
        password=secrets.token_urlsafe(24),
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_env(gcs_emulator, monkeypatch: pytest.MonkeyPatch):
    """This test talks to the emulator: STORAGE_EMULATOR_HOST is set for its duration."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return gcs_emulator


@pytest.fixture
def mlflow_tracking_env(mlflow_server, monkeypatch: pytest.MonkeyPatch):
    """This test is an authenticated MLflow client of ``mlflow_server`` (env set by monkeypatch)."""
    for name, value in mlflow_env(mlflow_server).items():
        monkeypatch.setenv(name, value)
    return mlflow_server


# Straight to the server: never through a proxy of the environment's.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    """The HTTP status ``url`` answers a GET with, with basic ``auth`` if given."""
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
