"""tools.tracking_stack.cli and its entry scripts/tracking_stack.py: the ``export`` lines name
the password by reference only, and the command line refuses a bad admin password in one line
before it starts a server.
"""

import os
import subprocess
import sys

import pytest

from tests.support.runner_process import ROOT
from tests.support.services import tracking_stack


def test_export_lines_never_hold_the_password(tmp_path):
    class Fake:
        url = "http://127.0.0.1:5000"
        username = "admin"
        password = "the-real-password-value"
        data_dir = tmp_path

    gcs = type("G", (), {"url": "http://127.0.0.1:9023"})()
    lines = tracking_stack.export_lines(gcs, Fake(), password_generated=False)
    assert 'export MLFLOW_TRACKING_PASSWORD="$MLFLOW_AUTH_ADMIN_PASSWORD"' in lines
    assert "export STORAGE_EMULATOR_HOST=http://127.0.0.1:9023" in lines
    generated = tracking_stack.export_lines(gcs, Fake(), password_generated=True)
    assert f'export MLFLOW_TRACKING_PASSWORD="$(cat {tmp_path}/admin_password)"' in generated
    assert not any("the-real-password-value" in line for line in lines + generated)


@pytest.mark.parametrize(
    "command",
    [["scripts/tracking_stack.py"], ["-m", "tools.tracking_stack"]],
    ids=["script", "module"],
)
def test_the_command_line_refuses_a_short_password_in_one_line_and_starts_nothing(
    command, tmp_path
):
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": "short"}
    data_dir = tmp_path / "stack"
    argv = [sys.executable, *command, "--port", "0", "--gcs-port", "0", "--data-dir", str(data_dir)]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "12 characters" in line
    assert "short" not in result.stdout + result.stderr.replace("error: ", "")
    assert not list(data_dir.glob("*.log"))  # no server was started
