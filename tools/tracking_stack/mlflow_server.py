"""The MLflow server of the local tracking stack, with basic auth.

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

"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from tools.tracking_stack.servers import (
    DEFAULT_ADMIN_USERNAME,
    HOST,
    MIN_PASSWORD_LENGTH,
    PASSWORD_FILE,
    RUNNING,
    MlflowServer,
    claim_port,
    spawn,
    wait_ready,
)


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
    port = claim_port(port)
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
    process = spawn(cmd, env, log_path, cwd=data_dir)
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
    RUNNING.append(server)
    wait_ready(server, "/health", timeout)
    return server
