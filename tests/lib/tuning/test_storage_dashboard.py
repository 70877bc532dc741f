"""optuna-dashboard on a study of the reference configuration: its objectives are shown by
name (``val_loss``, ``val_accuracy``), not as "0" and "1", from an SQLite database and from a
journal file, the two storages docs/tuning-pruning.md shows it with."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lib import tuning
from tests.support.tuning import config, fake_trial, storage_url

DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"optuna-dashboard exited: {proc.communicate()[0]}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask, not optimize
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_dashboard_names_the_studys_objectives(tmp_path, kind):
    assert DASHBOARD.exists() or shutil.which("optuna-dashboard"), "run scripts/setup.sh"
    storage = storage_url(tmp_path, kind)
    handle = tuning.open_study(config(storage=storage, study_name="named"))
    trial = handle.study.ask()
    scraps = fake_trial(trial.number, {"val_split": 0.25}).scraps
    handle.study.tell(trial, [scraps["val_loss"], scraps["val_accuracy"]])

    port = _free_port()
    argv = [str(DASHBOARD), storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        (study,) = _get(base, proc)["study_summaries"]
        assert study["study_name"] == "named"
        detail = _get(f"{base}/{study['study_id']}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert detail["objective_names"] == ["val_loss", "val_accuracy"]
    assert [t["values"] for t in detail["trials"]] == [[0.25, 0.75]]
