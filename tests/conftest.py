"""Shared fixtures: the local aclImdb archive and the project paths; how the test processes
share the tests out (scripts/test.sh runs pytest in two, with pytest-xdist)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixture modules, each fixture started on demand by the tests that ask for it: the real MLflow
# server (basic auth) and GCS emulator, the Docker engine, the PostgreSQL server.
pytest_plugins = [
    "tests.support.services",
    "tests.support.docker_engine",
    "tests.support.postgres",
    "tests.support.tiers",  # --tier fast|slow (scripts/test.sh)
    "tests.support.compare_runs",  # compare_store: runs to compare, written by hand
]

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = Path(
    os.environ.get("ACLIMDB_ARCHIVE", ROOT.parent / "shared" / "data" / "aclImdb_v1.tar.gz")
)


@pytest.fixture(scope="session")
def archive_path() -> Path:
    """The full aclImdb archive that lies beside the project (never downloaded by tests)."""
    if not ARCHIVE.is_file():
        pytest.fail(f"the aclImdb archive is missing at {ARCHIVE}; set ACLIMDB_ARCHIVE to its path")
    return ARCHIVE


@pytest.fixture(scope="session")
def trained_model():
    """The tiny exported model of ``tests.support.logged_models.train_model()`` (raw strings
    in), trained once per test process for every test that needs *a* trained model and does
    not change it; a test that needs its own seed or settings trains its own."""
    from tests.support.logged_models import train_model  # TensorFlow: only when asked for

    return train_model()


@pytest.fixture()
def runner_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """For a test that calls the runner's main(), which sets up logging: its files under
    tmp_path, not the checkout; its handlers (on the test's captured stderr) removed after."""
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture()
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder in which nothing can be written, by root either: a read-only tmpfs
    mounted on it (unmounted after) when the tests run as root, else no write permission."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]
    subprocess.run(mount, check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


@pytest.fixture()
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a full file system: a 64 KiB tmpfs mounted on it, filled by one hidden
    file (unmounted after). It takes root to mount one: skipped otherwise."""
    if os.geteuid() != 0:
        pytest.skip("a full file system is a tmpfs mount, which takes root")
    folder = tmp_path / "full"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    subprocess.run(mount, check=True, capture_output=True)
    try:
        with open(folder / ".filler", "wb", buffering=0) as filler:
            with contextlib.suppress(OSError):
                while True:  # until ENOSPC
                    filler.write(b"\0" * 4096)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


# $MLFLOW_TRACKING_URI as the test session found it.
_SESSION_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _tracking_uri_env_left_as_found():
    """``mlflow.set_tracking_uri`` (called by lib.tracking.runs) also sets $MLFLOW_TRACKING_URI,
    for child processes: a test that tracks in this process must not hand its store to the
    tests after it (the pipeline's stamps record that variable). Restored to what the
    session found, not what the test found: a module-scoped fixture that tracks runs before
    this fixture's start."""
    before = _SESSION_TRACKING_URI
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


# The modules that run containers: they share one test process, because the Docker engine
# that tests.support.docker_engine starts belongs to the process that started it (stopped at
# its exit), and because image builds are better one after another than against each other.
DOCKER_MODULES = frozenset(
    {
        "tests/system/test_container_signals.py",
        "tests/system/test_containers.py",
        "tests/system/test_images.py",
        "tests/system/test_infer_container.py",
        "tests/system/test_page_container.py",
        "tests/system/test_serving_container.py",
    }
)


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the Docker modules as one unit: every module runs whole in one
    process (so a module's fixtures, a trained model or a server, are made once)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "docker" if module in DOCKER_MODULES else module

    return ModuleScheduling(config, log)
