"""tools.tracking_stack.servers: each server a process group that ``stop()`` ends whole, a busy
port refused, a server that dies reported with its log, and the emulator's variable set and
restored around a block.
"""

import os
import time

import pytest

from tests.support.services import http_status, tracking_stack, use_gcs_emulator

pytestmark = pytest.mark.slow  # each test starts a server


def _group_gone(pgid, timeout=30.0):
    """Whether the process group ends within ``timeout`` s: killed processes leave the group
    a moment after the signal (their parent or init reaps them), not at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.mark.services
def test_use_gcs_emulator_sets_and_restores(gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://previous:1")
    with use_gcs_emulator(gcs_emulator):
        assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.url
    assert os.environ["STORAGE_EMULATOR_HOST"] == "http://previous:1"
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    with use_gcs_emulator(gcs_emulator):
        assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.url
    assert "STORAGE_EMULATOR_HOST" not in os.environ


@pytest.mark.services
def test_stop_ends_the_whole_process_group(tmp_path):
    server = tracking_stack.start_gcs_emulator(tmp_path, bucket="stop-test", in_memory=True)
    pgid = server.process.pid
    assert os.getpgid(pgid) == pgid != os.getpgid(0)  # its own group
    assert http_status(server.url + "/") == 200
    server.stop()
    assert _group_gone(pgid)
    server.stop()  # idempotent


@pytest.mark.services
def test_a_busy_port_is_refused(gcs_emulator, tmp_path):
    with pytest.raises(tracking_stack.ServerStartError, match="already in use"):
        tracking_stack.start_gcs_emulator(tmp_path, port=gcs_emulator.port)


@pytest.mark.services
@pytest.mark.slow
def test_a_server_that_dies_reports_its_log(tmp_path):
    # An empty Flask secret key makes the basic-auth app refuse to start.
    with pytest.raises(tracking_stack.ServerStartError) as info:
        tracking_stack.start_mlflow_server(
            tmp_path,
            password="a-long-enough-password",
            extra_env={"MLFLOW_FLASK_SERVER_SECRET_KEY": ""},
            timeout=180,
        )
    message = str(info.value)
    assert "exited" in message and "MLFLOW_FLASK_SERVER_SECRET_KEY" in message
    assert "a-long-enough-password" not in message
    assert _group_gone(info.value.pid)
