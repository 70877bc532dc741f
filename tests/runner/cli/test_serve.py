"""``python -m runner serve``: bad input is one line (exit status 2) before anything starts, and
the command imports no training tool (the serving image has none), with the virtual
environment not activated. Serving a real model: tests/system/test_serving*.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from runner.cli import serve
from runner.cli.main import build_parser
from tests.support.runner_process import run_python, run_runner
from tests.support.scoring_server import TRAINING_TOOLS


def _not_activated() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return env | {"PATH": os.pathsep.join(path)}


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--model", "m", "--port", "0"], "error: --port: 0 is not a TCP port: give 1 to 65535"),
        (["--model", "m", "--workers", "0"], "error: --workers: 0: give 1 or more"),
        (["--model", "m", "--stall-timeout", "0"], "error: --stall-timeout: 0.0: give more than 0"),
    ],
)
def test_an_option_out_of_range_is_one_line(argv, line, capsys):
    assert serve.main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


def test_a_missing_option_is_one_line_pointing_at_help(capsys):
    with pytest.raises(SystemExit) as info:
        serve.main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err and "python -m runner serve --help" in err


def test_a_model_that_is_not_there_is_one_line_before_the_server_starts(tmp_path):
    done = run_runner(["serve", "--model", str(tmp_path / "nothing")], env=_not_activated())
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "does not exist" in done.stderr
    assert done.stderr.startswith(f"error: model {tmp_path / 'nothing'} does not exist")


def test_an_unknown_registered_model_lists_what_the_store_holds(tmp_path):
    env = _not_activated() | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = run_runner(["serve", "--model", "models:/nothing@champion"], env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: no registered model 'nothing'")


def test_serve_is_a_runner_command_and_imports_no_training_tool():
    assert "serve" in build_parser().format_help()
    done = run_runner(["serve", "--help"], env=_not_activated())
    assert done.returncode == 0 and "--max-body-mb" in done.stdout, done.stderr
    found = run_python(
        """
        import json, sys
        import runner.cli.serve, lib.inference.server
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
        """
    )
    assert not TRAINING_TOOLS & set(json.loads(found)), found
