"""The project's Docker images, built once per test session, each when first asked for.

API, for tests that run things inside the images::

    from tests.support.images import POD_ARGS, built_image

    pytestmark = pytest.mark.usefixtures("docker_engine")  # tests/conftest.py's plugin

    def test_something():
        tag = built_image("data-prep")   # "imdb-sentiment/data-prep:test"
        subprocess.run(["docker", "run", "--rm", tag, "python", "-m", "runner", "--help"])

To run a container as a restricted Kubernetes pod runs it (the polyaxonfiles' profile:
user 2222, read-only root filesystem, only /tmp and the volumes writable, no capabilities),
put :data:`POD_ARGS` after ``docker run``.

``built_image(name)`` takes a Dockerfile's stem (one of :data:`IMAGES`), makes sure an engine
answers (tests.support.docker_engine), builds the base image's offline stand-in with
scripts/base_image.sh when ``python:3.11.14-slim-bookworm`` is absent, then runs
``docker build --network host -f docker/<name>.Dockerfile -t imdb-sentiment/<name>:test .``
with the legacy builder (DOCKER_BUILDKIT=0), whose layer cache keeps the dependency layer
between runs. It returns the tag. The build log lands in test-artifacts/images/<name>.build.log;
a failed build fails the test with the log's tail. A file lock per image lets two test
processes ask at once: the second waits and finds the layers cached. :data:`BUILD_SECONDS`
records how long each build of this process took. With IMDB_IMAGES_NO_CACHE=1 the images
are built without the layer cache (``--no-cache``): how a cold build is measured without
removing any image.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.docker_engine import docker_cli, ensure_engine

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ARTIFACTS = ROOT / "test-artifacts" / "images"
IMAGES = ("data-prep", "model-training-cpu", "model-training-gpu", "model-serving")
BASE_SCRIPT = ROOT / "scripts" / "base_image.sh"
BUILD_TIMEOUT_S = 1800
TAIL_LINES = 40

# ``docker run`` options for a container run like the pods: /tmp is a tmpfs that, like an
# emptyDir, allows exec (Docker's default tmpfs is noexec).
POD_ARGS = (
    "--read-only",
    "--tmpfs",
    "/tmp:rw,exec,nosuid,nodev,mode=1777",
    "--user",
    "2222:2222",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)

BUILD_SECONDS: dict[str, float] = {}
_built: dict[str, str] = {}


def tag_of(name: str) -> str:
    """The tag the tests give the image built from docker/<name>.Dockerfile."""
    return f"imdb-sentiment/{name}:test"


def requirement_pins(name: str) -> dict[str, str]:
    """A requirements file's pins: package name (lower case, extras dropped) -> line."""
    pins = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if line[:1].isalnum():
            pins[re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower()] = line.strip()
    return pins


def _load_lock_script():
    """``scripts/lock.py`` (``scripts`` is not a package), loaded by path."""
    spec = importlib.util.spec_from_file_location("lock_script", ROOT / "scripts" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# scripts/lock.py: the roles, their locks and the lock reader.
lock_script = _load_lock_script()
# The lock each image's environment is: what its last `pip install --require-hashes` installs.
IMAGE_LOCKS = {
    "data-prep": "requirements-prep.lock",
    "model-training-cpu": "requirements.lock",
    "model-training-gpu": "requirements-gpu.lock",
    "model-serving": "requirements-serve.lock",
}


def base_of(name: str) -> str:
    """The image that docker/<name>.Dockerfile starts FROM."""
    text = (DOCKER / f"{name}.Dockerfile").read_text(encoding="utf-8")
    found = re.search(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert found, f"docker/{name}.Dockerfile has no FROM line"
    return found.group(1)


def image_present(ref: str) -> bool:
    """Whether the engine holds an image named ``ref``."""
    done = subprocess.run(
        [docker_cli(), "image", "inspect", ref], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0


def image_size(ref: str) -> int:
    """The image's size in bytes, as ``docker images`` reports it."""
    done = subprocess.run(
        [docker_cli(), "image", "inspect", "-f", "{{.Size}}", ref],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:])


def run_logged(argv: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> float:
    """Runs ``argv`` in the project root with its output in ``log``; its duration in s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        try:
            done = subprocess.run(
                argv,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{what} ran past {BUILD_TIMEOUT_S} s; its log: {log}\n{_tail(log)}")
    seconds = time.monotonic() - start
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}); its log: {log}\n{_tail(log)}")
    return seconds


class _Lock:
    """An exclusive file lock in test-artifacts/images, held across test processes."""

    def __init__(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.path = ARTIFACTS / f"{name}.lock"

    def __enter__(self) -> _Lock:
        self.file = self.path.open("w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def ensure_base(ref: str) -> None:
    """Builds the offline stand-in for ``ref`` (scripts/base_image.sh) unless it is present."""
    with _Lock("base"):
        if image_present(ref):
            return
        BUILD_SECONDS["base"] = run_logged(
            [str(BASE_SCRIPT), ref], ARTIFACTS / "base.build.log", f"the stand-in base {ref}"
        )


def built_image(name: str) -> str:
    """The tag of the image built from docker/<name>.Dockerfile, built on first call."""
    if name not in IMAGES:
        raise ValueError(f"no image {name!r}; the images are {', '.join(IMAGES)}")
    if name in _built:
        return _built[name]
    ensure_engine()
    ensure_base(base_of(name))
    tag = tag_of(name)
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    argv = [docker_cli(), "build", "--network", "host", "-f", f"docker/{name}.Dockerfile"]
    if os.environ.get("IMDB_IMAGES_NO_CACHE") == "1":
        argv.append("--no-cache")
    with _Lock(name):
        BUILD_SECONDS[name] = run_logged(
            [*argv, "-t", tag, "."], ARTIFACTS / f"{name}.build.log", f"docker build of {name}", env
        )
    _built[name] = tag
    return tag
