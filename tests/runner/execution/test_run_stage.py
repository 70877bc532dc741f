"""runner.execution.run_stage: the one sequence that runs a stage (execute, hooks, report) for the
stage
commands, the pipeline and the trials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.execution.execute import Execution
from runner.execution.run_stage import exit_status, print_report


def test_its_callers_import_it_without_papermill():
    # The runner refuses bad input, status decides and the tune kernel starts its trial
    # kernels before papermill is imported: run_stage imports it only when a stage runs.
    code = (
        "import sys, runner.cli.main, runner.pipeline.plan, runner.trial_backend\n"
        "import runner.execution.run_stage\n"
        "print(sorted(m for m in ('papermill', 'nbclient', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "fields, status, line",
    [
        ({}, 0, None),
        ({"error": "cell 3: ParameterError: epochs: bad", "user_error": True}, 2, "stopped at"),
        ({"error": "interrupted", "interrupted": True}, 130, "stopped: interrupted"),
        (
            {"error": "cell 2: ValueError: x", "error_detail": "\x1b[31mTraceback\x1b[0m"},
            1,
            "failed",
        ),
    ],
)
def test_the_report_and_the_exit_status_agree(tmp_path: Path, capsys, fields, status, line):
    execution = Execution("train", {}, tmp_path / "train.ipynb", **fields)
    assert exit_status(execution) == status
    assert print_report("train", execution) == status
    out, err = capsys.readouterr()
    if line is None:
        assert out.startswith("train succeeded in 0.0 s\n") and not err
    else:
        assert err.startswith(f"error: train {line}") and not out
        assert "\x1b[" not in err  # the traceback's colours removed
