"""A Docker engine for the tests: the one that answers, else a ``dockerd`` started here.

Use the session fixture ``docker_engine`` (or call :func:`ensure_engine` from a helper): it
returns once ``docker info`` answers. When no engine answers, it starts Debian's ``dockerd``
(installed by scripts/system_packages.sh) as root with the overlay2 driver, its log in
test-artifacts/docker/dockerd.log, and stops that daemon, and only that one, when the test
process exits. An engine that was already running is left alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "docker"
START_TIMEOUT_S = 90.0

_started: subprocess.Popen | None = None
_ready = False


def docker_cli() -> str:
    """The Docker client's path; fails the test with one line when there is none."""
    found = shutil.which("docker")
    if not found:
        pytest.fail("no docker client on PATH; install docker.io with scripts/system_packages.sh")
    return found


def engine_answers(timeout_s: float = 20.0) -> bool:
    """Whether a Docker engine answers ``docker info``."""
    try:
        done = subprocess.run(
            [docker_cli(), "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def _stop_started() -> None:
    """Stops the daemon this process started (SIGTERM, then SIGKILL after 30 s)."""
    global _started, _ready
    if _started is None:
        return
    _started.terminate()
    try:
        _started.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _started.kill()
        _started.wait()
    _started, _ready = None, False


def _start_dockerd() -> subprocess.Popen:
    dockerd = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None
    )
    if not dockerd:
        pytest.fail(
            "no Docker engine answers and dockerd is missing; run scripts/system_packages.sh"
        )
    if os.geteuid() != 0:
        pytest.fail("no Docker engine answers and dockerd needs root; start one, or run as root")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTIFACTS / "dockerd.log").open("ab")
    # Its own session: a Ctrl-C meant for pytest does not kill the daemon mid-build.
    return subprocess.Popen(
        [dockerd, "--storage-driver", "overlay2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def ensure_engine() -> None:
    """Returns once a Docker engine answers, starting ``dockerd`` when none does."""
    global _started, _ready
    if _ready:
        return
    if not engine_answers():
        _started = _start_dockerd()
        atexit.register(_stop_started)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not engine_answers(timeout_s=5):
            if _started.poll() is not None:
                pytest.fail(
                    f"dockerd exited with {_started.returncode} before it answered; "
                    f"see {ARTIFACTS / 'dockerd.log'}"
                )
            if time.monotonic() > deadline:
                _stop_started()
                pytest.fail(
                    f"dockerd did not answer within {START_TIMEOUT_S:.0f} s; "
                    f"see {ARTIFACTS / 'dockerd.log'}"
                )
            time.sleep(0.5)
    _ready = True


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """A Docker engine that answers; returns the docker client's path."""
    ensure_engine()
    return docker_cli()
