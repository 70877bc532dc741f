"""A PostgreSQL server for the tests: a shared Optuna storage that several jobs work on.

``start_postgres()`` runs Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``, installed by
scripts/system_packages.sh): ``initdb`` into a new temporary folder, the server on 127.0.0.1
at a free port, a login role with a random password and a database it owns. TCP clients
must give the password (scram-sha-256). As root, the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root). ``stop()`` stops it and removes the folder. The session
fixture ``postgres_server`` does both (tests/conftest.py registers this module as a plugin).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 60


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder; fails the test with one line if none."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if not found:
        pytest.fail("no PostgreSQL server; install postgresql with scripts/system_packages.sh")
    return found[-1].parent


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    base: Path  # data folder, socket and log
    _bin: Path
    _as_user: list[str]

    def url(self) -> str:
        """The storage URL without the password (the driver, psycopg 3, reads $PGPASSWORD)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def stop(self) -> None:
        subprocess.run(
            [*self._as_user, str(self._bin / "pg_ctl"), "-D", str(self.base / "data")]
            + ["-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _run(argv: list[str], what: str, **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT_S, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {done.stderr[-2000:]}")


def start_postgres(user: str = "optuna", database: str = "optuna") -> PostgresServer:
    """A running server with ``user`` (a random password) owning ``database``."""
    bin_dir = postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(
        HOST, _free_port(), user, secrets.token_urlsafe(18), database, base, bin_dir, as_user
    )
    data = base / "data"
    # Local socket connections (the set-up below) trust the OS user; TCP needs a password.
    _run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres"]
        + ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"],
        "initdb",
    )
    options = f"-c listen_addresses={HOST} -c port={server.port} -k {base}"
    _run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log")]
        + ["-o", options, "-w", "-t", str(START_TIMEOUT_S), "start"],
        "pg_ctl start",
    )
    sql = (
        f"CREATE ROLE {user} LOGIN PASSWORD '{server.password}';"
        f"CREATE DATABASE {database} OWNER {user};"
    )
    psql = [str(bin_dir / "psql"), "-h", str(base), "-p", str(server.port), "-U", "postgres"]
    try:
        for statement in sql.split(";")[:-1]:  # CREATE DATABASE cannot run in a transaction
            _run([*as_user, *psql, "-v", "ON_ERROR_STOP=1", "-c", statement], "psql")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server (``.url()``, ``.password``), stopped at the end of the session."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
