"""Checking the MLflow tracking store and an experiment's artifact location before any
work, and the store's URI shown without credentials (a ``user:password@`` in
$MLFLOW_TRACKING_URI is moved into MLflow's own credential variables first:
:func:`move_uri_credentials`).

An HTTP server gets bounded retries (an unreachable one is reported within
``CHECK_DEADLINE_S``, or the seconds in ``$IMDB_TRACKING_CHECK_S``; a refused login at
once); a SQLite store is created under a lock; a folder store is created. A local artifact
location must take a file, a ``gs://`` one's bucket must answer. Each problem is one
:class:`lib.core.errors.UserError` line.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from lib.core import gcs, paths
from lib.core.errors import TrackingError, first_line

CHECK_DEADLINE_S = 30.0  # an unreachable server is reported within this time
# A cluster whose server restarts slowly may want longer; a test of an unreachable server shorter.
CHECK_DEADLINE_ENV = "IMDB_TRACKING_CHECK_S"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"

# MLflow's own default retries a lost server for minutes; fail within about half a minute
# instead (a user's own setting wins).
for _name, _value in (
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20"),
):
    os.environ.setdefault(_name, _value)


def public_uri(uri: str) -> str:
    """``uri`` without any user:password part, safe to show, glue or log."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 host keeps its brackets
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def move_uri_credentials(environ: MutableMapping[str, str] | None = None) -> None:
    """Move a ``user:password@`` out of $MLFLOW_TRACKING_URI into MLFLOW_TRACKING_USERNAME
    and MLFLOW_TRACKING_PASSWORD (MLflow's own basic-auth variables), leaving the URI
    without it, in ``environ`` (default ``os.environ``, which kernels started later inherit).

    So the password is never part of a URI that MLflow, a notebook or a log shows, and every
    client (the notebook's, the runner's that logs the notebook) logs in the same way.
    Raises TrackingError if those variables are already set to other credentials.
    """
    environ = os.environ if environ is None else environ
    uri = environ.get(TRACKING_URI_ENV) or ""
    netloc = urlsplit(uri).netloc if "@" in uri else ""
    if "@" not in netloc:
        return
    user, has_password, password = netloc.rpartition("@")[0].partition(":")
    moved = {USERNAME_ENV: unquote(user)}
    if has_password:
        moved[PASSWORD_ENV] = unquote(password)
    for name, value in moved.items():
        if environ.get(name) not in (None, "", value):
            raise TrackingError(
                f"$MLFLOW_TRACKING_URI holds user:password@, and {name} is set to another "
                f"value: give the credentials once, in {USERNAME_ENV} and {PASSWORD_ENV}, and "
                "the URI without them"
            )
    environ.update({name: value for name, value in moved.items() if value})
    environ[TRACKING_URI_ENV] = public_uri(uri)


def check_deadline_s(environ: MutableMapping[str, str] | None = None) -> float:
    """The seconds an unreachable server is retried: ``$IMDB_TRACKING_CHECK_S`` when set,
    else :data:`CHECK_DEADLINE_S`; TrackingError (one line) for a value that is not a
    positive number."""
    value = (os.environ if environ is None else environ).get(CHECK_DEADLINE_ENV, "").strip()
    if not value:
        return CHECK_DEADLINE_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise TrackingError(
            f"${CHECK_DEADLINE_ENV} is {value!r}: give the seconds to retry an unreachable "
            f"MLflow server as a positive number, or unset it for {CHECK_DEADLINE_S:g}"
        )
    return seconds


def check_store(uri: str, deadline_s: float | None = None) -> None:
    """Raise TrackingError, with one clear line, unless the store at ``uri`` answers.

    HTTP servers get bounded retries within ``deadline_s`` (default
    :func:`check_deadline_s`); a refused login fails at once.
    """
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri, check_deadline_s() if deadline_s is None else deadline_s)
    elif scheme == "sqlite":
        db = paths.sqlite_path(uri)
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingError(
                    f"cannot create the MLflow store {uri}: {exc}; choose a writable folder"
                ) from None
            if not os.access(db.parent, os.W_OK):
                raise TrackingError(
                    f"the MLflow store folder {db.parent} is not writable: make it writable or "
                    "choose another mlflow_tracking_uri"
                )
            _open_sqlite_store(uri, db)
    elif scheme in ("", "file"):
        folder = Path(urlsplit(uri).path if scheme == "file" else uri)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"cannot create the MLflow store {uri}: {exc}; choose a writable folder"
            ) from None


def check_artifact_location(location: str, experiment: str, *, existing: bool) -> None:
    """Raise TrackingError (StorageError for a bucket), with one line naming the location,
    unless experiment ``experiment``'s artifact ``location`` can be written: a local folder
    is created and takes a small file (removed again), a ``gs://`` bucket is listed. Other
    schemes (``mlflow-artifacts:`` served by the tracking server, ...) are the server's.

    ``existing``: the experiment is already recorded with this location (only a new
    experiment name can move its artifacts).
    """
    if gcs.is_gcs_uri(location):
        gcs.check_bucket(location)
        return
    parts = urlsplit(location)
    if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
        return
    folder = Path(unquote(parts.path) if parts.scheme == "file" else location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        fix = (
            "make it writable, or use a new mlflow_exp_name (the experiment keeps its location)"
            if existing
            else "make it writable or choose another mlflow_artifact_location"
        )
        raise TrackingError(
            f"cannot write the artifact location {location} of MLflow experiment "
            f"{experiment!r}: {first_line(exc)[:300]}; {fix}"
        ) from None


_OPENED_SQLITE: set[str] = set()


def _open_sqlite_store(uri: str, db: Path) -> None:
    """Open the SQLite store (creating its tables if it is new) once per process, holding a
    lock on its folder: processes that create one database at the same moment (a tune
    notebook and its trials, tune processes sharing a study) race MLflow's schema
    migrations, and the loser can leave the database unusable."""
    if uri in _OPENED_SQLITE:
        return
    import fcntl

    import mlflow

    fd = os.open(db.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
        except Exception as exc:
            raise TrackingError(
                f"cannot open the MLflow store {uri}: {first_line(exc)[:300]}; check "
                "mlflow_tracking_uri (or $MLFLOW_TRACKING_URI)"
            ) from None
    finally:
        os.close(fd)  # releases the lock
    _OPENED_SQLITE.add(uri)


def _check_server(uri: str, deadline_s: float) -> None:
    import requests

    user = os.environ.get(USERNAME_ENV)
    password = os.environ.get(PASSWORD_ENV)
    auth = (user, password or "") if user else None
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    shown = public_uri(uri)
    started, tries, last = time.monotonic(), 0, ""
    while True:
        tries += 1
        left = deadline_s - (time.monotonic() - started)
        try:
            response = requests.get(
                url, params={"max_results": 1}, auth=auth, timeout=(min(5.0, max(left, 1.0)), 10.0)
            )
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            if response.status_code == 401:
                who = f"user {user!r}" if user else "no user (MLFLOW_TRACKING_USERNAME is not set)"
                raise TrackingError(
                    f"the MLflow tracking server {shown} refused the login of {who} (HTTP 401): "
                    "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                )
            if response.status_code == 403:
                raise TrackingError(
                    f"the MLflow tracking server {shown} denied user {user!r} (HTTP 403): "
                    "ask its admin for permission on the experiment"
                )
            if response.ok:
                return
            last = f"HTTP {response.status_code}"
        if time.monotonic() - started + min(2.0 * tries, 5.0) > deadline_s:
            break
        time.sleep(min(2.0 * tries, 5.0))
    raise TrackingError(
        f"cannot reach the MLflow tracking server at {shown} ({last}; {tries} tries in "
        f"{time.monotonic() - started:.0f} s): check the URI and that the server is running"
    )
