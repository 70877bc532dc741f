"""lib.tracking.store_check: the tracking store is checked before any work, each problem one
line."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from lib.core.errors import TrackingError
from lib.tracking import store_check as tracking_check

ROOT = Path(__file__).resolve().parents[3]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_public_uri_drops_credentials():
    assert tracking_check.public_uri("https://bob:s3cret@mlflow.example:8443/x") == (
        "https://mlflow.example:8443/x"
    )
    assert tracking_check.public_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_unreachable_server_fails_fast_with_one_clear_line():
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        tracking_check.check_store(uri, deadline_s=1)
    # Gave up at about its deadline, not after MLflow's own retries (minutes), however
    # slow the machine.
    assert time.monotonic() - started < 60
    message = str(info.value)
    assert f"cannot reach the MLflow tracking server at {uri}" in message and "\n" not in message
    assert "check the URI and that the server is running" in message


def test_the_retry_deadline_comes_from_the_environment_when_set():
    assert tracking_check.check_deadline_s({}) == tracking_check.CHECK_DEADLINE_S
    assert tracking_check.check_deadline_s({"IMDB_TRACKING_CHECK_S": " 4.5 "}) == 4.5
    for bad in ("0", "-3", "soon", "inf", "nan"):
        with pytest.raises(TrackingError) as info:
            tracking_check.check_deadline_s({"IMDB_TRACKING_CHECK_S": bad})
        assert str(info.value).startswith(f"$IMDB_TRACKING_CHECK_S is {bad!r}: give the seconds")


def test_an_unreachable_server_is_retried_for_the_environments_seconds(monkeypatch):
    monkeypatch.setenv("IMDB_TRACKING_CHECK_S", "1")
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TrackingError) as info:
        tracking_check.check_store(uri)
    # One try, then a 2 s pause would pass the 1 s deadline: it stops (30 s would try 6 times).
    assert "(ConnectionError; 1 tries in " in str(info.value), info.value


def test_a_store_folder_that_cannot_be_made_names_the_store(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    with pytest.raises(TrackingError, match=r"cannot create the MLflow store sqlite:.*a writable"):
        tracking_check.check_store(uri)
    folder = blocker / "store"
    with pytest.raises(TrackingError, match=rf"cannot create the MLflow store {folder}"):
        tracking_check.check_store(str(folder))


def test_a_sqlite_store_is_created_and_usable(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    tracking_check.check_store(uri)
    assert (tmp_path / "new" / "mlflow.db").is_file()
    assert mlflow.MlflowClient(uri).search_experiments()[0].name == "Default"


@pytest.mark.slow
def test_processes_creating_one_sqlite_store_at_once_all_succeed(tmp_path):
    """MLflow's schema migrations race when several processes create one new database (a
    tune notebook and its trials, or tune processes sharing a study); check_store creates
    it under a lock, so every process gets a usable store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = (
        "import pathlib, sys, time; from lib.tracking import store_check as tracking_check\n"
        "import mlflow, mlflow.store.tracking.sqlalchemy_store, alembic.command\n"
        "barrier = pathlib.Path(sys.argv[2]); (barrier / sys.argv[3]).touch()\n"
        "while len(list(barrier.iterdir())) < 3: time.sleep(0.01)\n"
        "tracking_check.check_store(sys.argv[1]); print('ok')\n"
    )
    # A barrier: each process creates the store only once all three have imported MLflow.
    barrier = tmp_path / "ready"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, str(barrier), str(i)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    client = mlflow.MlflowClient(uri)
    assert client.search_experiments()[0].name == "Default"


@pytest.mark.parametrize("as_uri", [True, False], ids=["file-uri", "path"])
def test_a_writable_artifact_location_is_made_and_left_empty(tmp_path, as_uri):
    folder = tmp_path / "volume" / "ml artifacts" / "exp"  # a space: quoted in its file URI
    location = folder.as_uri() if as_uri else str(folder)
    tracking_check.check_artifact_location(location, "exp", existing=False)
    assert folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_read_only_artifact_location_is_one_line_naming_it(read_only_dir, existing):
    location = (read_only_dir / "mlartifacts" / "exp").as_uri()
    with pytest.raises(TrackingError) as info:
        tracking_check.check_artifact_location(location, "exp", existing=existing)
    message = str(info.value)
    assert message.startswith(f"cannot write the artifact location {location} of MLflow ")
    assert "Read-only file system" in message or "Permission denied" in message
    assert "\n" not in message and "store" not in message
    # The fix that works: a recorded location stays with its experiment.
    assert ("mlflow_exp_name" in message) == existing
    assert ("mlflow_artifact_location" in message) != existing
    assert list(read_only_dir.iterdir()) == []


def test_a_file_in_the_way_of_the_artifact_location_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(TrackingError, match=rf"cannot write the artifact location {blocker}/exp"):
        tracking_check.check_artifact_location(str(blocker / "exp"), "exp", existing=False)


@pytest.mark.parametrize("location", ["mlflow-artifacts:/exp", "s3://bucket/exp"])
def test_artifact_locations_that_are_not_local_are_left_to_their_server(
    location, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # taken for a relative path, it would be made here
    tracking_check.check_artifact_location(location, "exp", existing=True)
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_the_tracking_uri_move_to_mlflows_variables():
    env = {"MLFLOW_TRACKING_URI": "https://bob:s3cr%40t@mlflow.example:8443/x"}
    tracking_check.move_uri_credentials(env)
    assert env == {
        "MLFLOW_TRACKING_URI": "https://mlflow.example:8443/x",
        "MLFLOW_TRACKING_USERNAME": "bob",
        "MLFLOW_TRACKING_PASSWORD": "s3cr@t",
    }
    tracking_check.move_uri_credentials(env)  # nothing left to move
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example:8443/x"
    same = {"MLFLOW_TRACKING_URI": "http://bob:pw@[::1]:5000", "MLFLOW_TRACKING_USERNAME": "bob"}
    tracking_check.move_uri_credentials(same)
    assert same["MLFLOW_TRACKING_URI"] == "http://[::1]:5000"
    untouched = {"MLFLOW_TRACKING_URI": "sqlite:////tmp/a@b/mlflow.db"}
    tracking_check.move_uri_credentials(untouched)
    assert untouched == {"MLFLOW_TRACKING_URI": "sqlite:////tmp/a@b/mlflow.db"}


def test_credentials_in_the_uri_and_other_ones_in_the_variables_are_refused():
    env = {
        "MLFLOW_TRACKING_URI": "http://bob:uri-pass-1@127.0.0.1:5000",
        "MLFLOW_TRACKING_USERNAME": "bob",
        "MLFLOW_TRACKING_PASSWORD": "var-pass-2",
    }
    before = dict(env)
    with pytest.raises(TrackingError) as info:
        tracking_check.move_uri_credentials(env)
    message = str(info.value)
    assert "MLFLOW_TRACKING_PASSWORD is set to another value" in message
    assert "uri-pass-1" not in message and "var-pass-2" not in message and "\n" not in message
    assert env == before
