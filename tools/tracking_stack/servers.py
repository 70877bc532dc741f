"""The servers of the local tracking stack, each a subprocess in its own process group, and the
GCS emulator.

Each server is a subprocess in its own process group (``start_new_session``); ``stop()``
sends SIGTERM to the whole group, then SIGKILL to whatever is left, so no uvicorn worker
outlives it. Server output goes to ``<data_dir>/<name>.log``, never to the console.

GCS emulator (``gcp-storage-emulator``): reached by setting
``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT`` (scheme included). With that variable set,
google-cloud-storage 3.x's plain ``storage.Client()`` switches to anonymous credentials and
the placeholder project ``<none>`` by itself, so no credentials, project id or
``client_options`` are needed, and MLflow's ``gs://`` artifact repository (which calls
``storage.Client()``) works unchanged. The variable must be in the environment of every
process that touches ``gs://``: the client that logs artifacts (with
``--default-artifact-root gs://...`` artifacts go from the client straight to the bucket)
and the MLflow server when it proxies artifacts (``--artifacts-destination gs://...``,
experiments at ``mlflow-artifacts:/<id>``: then the client needs no GCS access at all).
The emulator serves one request at a time (a plain ``http.server.HTTPServer``) and answers
``GET /`` with ``OK``; ``--default-bucket`` creates the bucket (idempotently).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_BUCKET = "sentiment-mlflow"
ARTIFACT_PREFIX = "mlflow-tracking-server"
DEFAULT_ADMIN_USERNAME = "admin"
PASSWORD_FILE = "admin_password"
MIN_PASSWORD_LENGTH = 12  # mlflow.utils.validation._validate_password

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The servers started and not yet stopped: stopped at this process's exit.
RUNNING: list[Server] = []


class ServerStartError(RuntimeError):
    """A server exited or did not become ready in time (the message holds its log tail)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid  # of the stopped server's process group leader, if one was started


def artifact_root(bucket: str = DEFAULT_BUCKET) -> str:
    """The tracking server's artifact root in ``bucket``: ``gs://BUCKET/mlflow-tracking-server``."""
    return f"gs://{bucket}/{ARTIFACT_PREFIX}"


def experiment_artifact_location(name: str, bucket: str = DEFAULT_BUCKET) -> str:
    """Where experiment ``name`` keeps its artifacts: ``gs://BUCKET/mlflow-tracking-server/NAME``."""
    return f"{artifact_root(bucket)}/{name}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def claim_port(port: int | None) -> int:
    """``port`` if it is free (a busy one would answer the readiness check), else a free one."""
    if not port:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex((HOST, port)) == 0:
            raise ServerStartError(f"port {port} on {HOST} is already in use")
    return port


@dataclass(eq=False)
class Server:
    """A server subprocess running in its own process group."""

    name: str
    url: str
    port: int
    process: subprocess.Popen = field(repr=False)
    log_path: Path
    data_dir: Path
    _secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log, with its known secrets masked."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        for value in self._secrets:
            if value:
                text = text.replace(value, "********")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it after ``timeout`` s; idempotent."""
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Children (uvicorn workers) may outlive the leader: give them a moment, then kill.
        deadline = time.monotonic() + min(timeout, 5.0)
        while _group_exists(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self in RUNNING:
            RUNNING.remove(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(eq=False)
class GcsEmulator(Server):
    """The GCS emulator; ``env()`` is what a client process needs to use it."""

    bucket: str | None = None

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url}


@dataclass(eq=False)
class MlflowServer(Server):
    """The MLflow tracking server with basic auth and its admin user."""

    username: str = DEFAULT_ADMIN_USERNAME
    password: str = field(default="", repr=False)
    default_artifact_root: str | None = None
    storage_emulator_host: str | None = None

    def env(self) -> dict[str, str]:
        """MLFLOW_TRACKING_URI/USERNAME/PASSWORD (and STORAGE_EMULATOR_HOST if it uses one)."""
        env = {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }
        if self.storage_emulator_host:
            env["STORAGE_EMULATOR_HOST"] = self.storage_emulator_host
        return env


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@atexit.register
def _stop_all() -> None:
    """A safety net: never leave a server behind when the interpreter exits."""
    for server in list(RUNNING):
        server.stop(timeout=5)


def spawn(cmd: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """``cmd`` in a process group of its own, its output appended to ``log_path``."""
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def _http_ok(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: Server, health_path: str, timeout: float) -> None:
    """Until ``health_path`` answers 200; ServerStartError with the log tail if it exits or
    does not within ``timeout`` s (then it is stopped)."""
    deadline = time.monotonic() + timeout
    url = server.url + health_path
    while True:
        code = server.process.poll()
        if code is not None:
            server.stop()
            raise ServerStartError(
                f"{server.name} exited with code {code} before it was ready; "
                f"last lines of {server.log_path}:\n{server.log_tail()}",
                pid=server.process.pid,
            )
        if _http_ok(url):
            return
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(
                f"{server.name} did not answer {url} within {timeout:.0f} s; "
                f"last lines of {server.log_path}:\n{server.log_tail()}",
                pid=server.process.pid,
            )
        time.sleep(0.25)


def start_gcs_emulator(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    bucket: str | None = DEFAULT_BUCKET,
    in_memory: bool = False,
    timeout: float = 30.0,
) -> GcsEmulator:
    """Start ``gcp-storage-emulator`` on 127.0.0.1 with ``bucket`` created; wait until it answers.

    Blobs are kept under ``<data_dir>/gcs`` (unless ``in_memory``); the log is
    ``<data_dir>/gcs-emulator.log``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = claim_port(port)
    cmd = [sys.executable, "-m", "gcp_storage_emulator", "-d", str(data_dir / "gcs"), "start"]
    cmd += ["--host", HOST, "--port", str(port)]
    if bucket:
        cmd += ["--default-bucket", bucket]
    if in_memory:
        cmd.append("--in-memory")
    log_path = data_dir / "gcs-emulator.log"
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    process = spawn(cmd, env, log_path, cwd=data_dir)
    server = GcsEmulator(
        name="gcs emulator",
        url=f"http://{HOST}:{port}",
        port=port,
        process=process,
        log_path=log_path,
        data_dir=data_dir,
        bucket=bucket,
    )
    RUNNING.append(server)
    wait_ready(server, "/", timeout)
    return server
