"""A local copy of the production tracking stack: MLflow with basic auth, and a GCS emulator.

Run it by hand (it prints the URLs and the ``export`` lines to use, then runs until Ctrl-C)::

    python scripts/tracking_stack.py --port 5000 --gcs-port 9023 --data-dir /tmp/stack

or import it (the test fixtures in ``tests/support/services.py`` do)::

    gcs = start_gcs_emulator(data_dir, bucket="sentiment-mlflow")
    mlflow = start_mlflow_server(
        data_dir,
        default_artifact_root=artifact_root("sentiment-mlflow"),
        storage_emulator_host=gcs.url,
    )
    ...
    mlflow.stop(); gcs.stop()

Each server is a subprocess in its own process group (``start_new_session``); ``stop()``
sends SIGTERM to the whole group, then SIGKILL to whatever is left, so no uvicorn worker
outlives it. Server output goes to ``<data_dir>/<name>.log``, never to the console.

MLflow (3.17) with ``--app-name basic-auth``:

* the auth app reads an ini file named by ``MLFLOW_AUTH_CONFIG_PATH``; its ``database_uri``
  is relative to the server's working directory unless absolute, so the generated
  ``basic_auth.ini`` uses ``sqlite:////ABS/basic_auth.db``;
* ``MLFLOW_FLASK_SERVER_SECRET_KEY`` must be set (CSRF), or the server refuses to start;
* MLflow ships no admin password any more: the admin user is created on the first start from
  ``MLFLOW_AUTH_ADMIN_USERNAME`` / ``MLFLOW_AUTH_ADMIN_PASSWORD`` (which win over the ini
  file), the password must be at least 12 characters and not the old ``password1234``;
  once the user exists a different password in the environment is ignored (so a data dir
  that is reused keeps its first password: a generated one is kept in
  ``<data_dir>/admin_password``, mode 0600);
* ``GET /health`` needs no credentials; everything else answers 401 without valid ones;
* every request checks the password hash (werkzeug's slow KDF: 1-2 s per request on a busy
  2-core machine) unless ``auth_cache_ttl_seconds`` > 0 in the ini (the default here: 300);
  only successful checks are cached, so a wrong password is still rejected at once;
* the server also starts a job runner with seven huey consumers (all in its process group);
  ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (the default here) leaves them out;
* ``--workers 1`` keeps it to one uvicorn worker (the default is 4); start-up still takes
  10-40 s (the CLI bootstraps the databases, then the worker imports everything again);
* with ``--default-artifact-root ROOT`` a new experiment's artifact_location is
  ``ROOT/<experiment id>``; the ``ROOT/<experiment name>`` layout
  (``experiment_artifact_location``) needs ``artifact_location=`` at creation.

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

import argparse
import atexit
import os
import secrets
import signal
import socket
import stat
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
_RUNNING: list[Server] = []


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


def _claim_port(port: int | None) -> int:
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
        if self in _RUNNING:
            _RUNNING.remove(self)

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
    for server in list(_RUNNING):
        server.stop(timeout=5)


def _spawn(cmd: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
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


def _wait_ready(server: Server, health_path: str, timeout: float) -> None:
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
    port = _claim_port(port)
    cmd = [sys.executable, "-m", "gcp_storage_emulator", "-d", str(data_dir / "gcs"), "start"]
    cmd += ["--host", HOST, "--port", str(port)]
    if bucket:
        cmd += ["--default-bucket", bucket]
    if in_memory:
        cmd.append("--in-memory")
    log_path = data_dir / "gcs-emulator.log"
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    process = _spawn(cmd, env, log_path, cwd=data_dir)
    server = GcsEmulator(
        name="gcs emulator",
        url=f"http://{HOST}:{port}",
        port=port,
        process=process,
        log_path=log_path,
        data_dir=data_dir,
        bucket=bucket,
    )
    _RUNNING.append(server)
    _wait_ready(server, "/", timeout)
    return server


def admin_password(data_dir: Path, password: str | None = None) -> tuple[str, bool]:
    """The admin password and whether it was generated here.

    In order: ``password``, $MLFLOW_AUTH_ADMIN_PASSWORD, the one generated earlier for this
    data dir (``<data_dir>/admin_password``), else a new random one saved there (mode 0600).
    """
    password = password or os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
    if password:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(
                f"the MLflow admin password must be at least {MIN_PASSWORD_LENGTH} characters"
            )
        return password, False
    path = data_dir / PASSWORD_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), True
    password = secrets.token_urlsafe(24)
    path.touch(mode=stat.S_IRUSR | stat.S_IWUSR)
    path.write_text(password + "\n", encoding="utf-8")
    return password, True


def write_auth_config(
    data_dir: Path,
    username: str,
    default_permission: str = "READ",
    auth_cache_ttl_seconds: int = 300,
) -> Path:
    """``<data_dir>/basic_auth.ini`` with an absolute auth database; no password in it.

    ``auth_cache_ttl_seconds`` > 0 caches successful credential checks: without it every
    request pays a password hash check (about 1-2 s each on a busy 2-core machine).
    """
    path = data_dir / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = sqlite:///{data_dir / 'basic_auth.db'}\n"
        f"admin_username = {username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {auth_cache_ttl_seconds}\n",
        encoding="utf-8",
    )
    return path


def start_mlflow_server(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    artifacts_destination: str | None = None,
    *,
    default_artifact_root: str | None = None,
    storage_emulator_host: str | None = None,
    username: str | None = None,
    password: str | None = None,
    default_permission: str = "READ",
    auth_cache_ttl_seconds: int = 300,
    workers: int = 1,
    timeout: float = 120.0,
    extra_env: Mapping[str, str] | None = None,
) -> MlflowServer:
    """Start ``mlflow server --app-name basic-auth`` on 127.0.0.1; wait until /health answers.

    Runs are kept in ``<data_dir>/mlflow.db``, users in ``<data_dir>/basic_auth.db``. New
    experiments put artifacts under ``default_artifact_root`` (e.g. ``artifact_root(bucket)``)
    when given, else the server proxies them (``mlflow-artifacts:/``) to
    ``artifacts_destination`` (default ``<data_dir>/mlartifacts``). ``storage_emulator_host``
    becomes the server's STORAGE_EMULATOR_HOST. The admin user is ``username`` (else
    $MLFLOW_AUTH_ADMIN_USERNAME, else ``admin``) with the password from ``admin_password``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _claim_port(port)
    username = username or os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or DEFAULT_ADMIN_USERNAME
    password, _ = admin_password(data_dir, password)
    auth_config = write_auth_config(data_dir, username, default_permission, auth_cache_ttl_seconds)

    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"]
    cmd += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    cmd += ["--backend-store-uri", f"sqlite:///{data_dir / 'mlflow.db'}"]
    if default_artifact_root:
        cmd += ["--default-artifact-root", default_artifact_root]
    if artifacts_destination or not default_artifact_root:
        cmd += ["--artifacts-destination", artifacts_destination or str(data_dir / "mlartifacts")]

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLFLOW_TRACKING_") and k != "STORAGE_EMULATOR_HOST"
    }
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(auth_config),
        MLFLOW_AUTH_ADMIN_USERNAME=username,
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
        or secrets.token_hex(32),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    # The job runner (GenAI scorers etc.) spawns 8 more processes; off unless asked for.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    if storage_emulator_host:
        env["STORAGE_EMULATOR_HOST"] = storage_emulator_host
    env.update(extra_env or {})

    log_path = data_dir / "mlflow-server.log"
    process = _spawn(cmd, env, log_path, cwd=data_dir)
    server = MlflowServer(
        name="mlflow server",
        url=f"http://{HOST}:{port}",
        port=port,
        process=process,
        log_path=log_path,
        data_dir=data_dir,
        _secrets=(password, env["MLFLOW_FLASK_SERVER_SECRET_KEY"]),
        username=username,
        password=password,
        default_artifact_root=default_artifact_root,
        storage_emulator_host=storage_emulator_host,
    )
    _RUNNING.append(server)
    _wait_ready(server, "/health", timeout)
    return server


def start_stack(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    gcs_port: int | None = None,
    bucket: str = DEFAULT_BUCKET,
    **mlflow_kwargs: object,
) -> tuple[GcsEmulator, MlflowServer]:
    """The GCS emulator with ``bucket``, then MLflow keeping artifacts in that bucket."""
    gcs = start_gcs_emulator(data_dir, port=gcs_port, bucket=bucket)
    try:
        server = start_mlflow_server(
            data_dir,
            port=port,
            default_artifact_root=artifact_root(bucket),
            storage_emulator_host=gcs.url,
            **mlflow_kwargs,  # type: ignore[arg-type]
        )
    except BaseException:
        gcs.stop()
        raise
    return gcs, server


def export_lines(gcs: GcsEmulator, server: MlflowServer, password_generated: bool) -> list[str]:
    """Shell lines for a client of the stack; the password value itself is never printed."""
    if password_generated:
        password_ref = f'"$(cat {server.data_dir / PASSWORD_FILE})"'
    else:
        password_ref = '"$MLFLOW_AUTH_ADMIN_PASSWORD"'
    return [
        f"export MLFLOW_TRACKING_URI={server.url}",
        f"export MLFLOW_TRACKING_USERNAME={server.username}",
        f"export MLFLOW_TRACKING_PASSWORD={password_ref}",
        f"export STORAGE_EMULATOR_HOST={gcs.url}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run MLflow (basic auth) and a GCS emulator on 127.0.0.1 until Ctrl-C.",
        epilog="The admin password is $MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 characters), "
        "else generated into DATA_DIR/admin_password.",
    )
    parser.add_argument("--port", type=int, default=5000, help="MLflow port (default 5000)")
    parser.add_argument("--gcs-port", type=int, default=9023, help="emulator port (9023)")
    parser.add_argument("--data-dir", type=Path, required=True, help="databases, blobs, logs")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help=f"bucket ({DEFAULT_BUCKET})")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _, generated = admin_password(data_dir)
        print(f"starting the GCS emulator and MLflow (logs in {data_dir}) ...", flush=True)
        gcs, server = start_stack(data_dir, args.port, args.gcs_port, args.bucket)
    except (ServerStartError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MLflow:       {server.url}  (user {server.username})")
    print(f"GCS emulator: {gcs.url}  (bucket gs://{args.bucket})")
    print(f"artifacts:    {artifact_root(args.bucket)}/<experiment name>")
    print("\n# in the client's shell:")
    print("\n".join(export_lines(gcs, server, generated)))
    print("\nCtrl-C to stop.", flush=True)
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    try:
        while not stop:
            for s in (gcs, server):
                if not s.alive:
                    print(f"error: {s.name} died:\n{s.log_tail()}", file=sys.stderr)
                    stop = True
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping ...", flush=True)
        server.stop()
        gcs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
