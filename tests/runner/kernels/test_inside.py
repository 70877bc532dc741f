"""The functions that run inside a pooled kernel, called directly in this process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from lib.data import prep
from runner.kernels import inside

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def shell():
    """A real IPython shell (the one a kernel runs), with an in-memory history."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    yield shell
    InteractiveShell.clear_instance()


def test_reset_gives_a_fresh_session_and_keeps_the_imports(shell):
    shell.run_cell("import colorsys\nleft_over = [1, 2, 3]", store_history=True)
    shell.run_cell("left_over.append(4)", store_history=True)
    assert shell.execution_count == 3
    inside.reset()
    assert "left_over" not in shell.user_ns and "colorsys" not in shell.user_ns
    assert shell.execution_count == 1  # the next cell is In[1] again
    assert "colorsys" in sys.modules  # what was imported stays imported


@pytest.mark.slow  # MLflow's import and a new store's migrations
def test_reset_ends_an_active_mlflow_run_as_failed_and_closes_the_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    # MLflow's global URI, not only the variable: an earlier test of this process may have
    # set the global (lib.tracking.runs does), which wins over the variable.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        run = mlflow.start_run()
        plt.figure()
        inside.reset()  # no IPython shell here: the rest is reset all the same
        assert mlflow.active_run() is None
        assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
        assert plt.get_fignums() == []
    finally:
        mlflow.set_tracking_uri(None)  # as a fresh process has it (the variable is restored)


def test_warm_up_imports_the_modules_and_reports_the_ones_that_fail():
    sys.modules.pop("colorsys", None)
    result = inside.warm_up({"modules": ["colorsys", "no_such_module_for_this_test"]})
    assert "colorsys" in sys.modules
    assert result["failed"] == [
        "no_such_module_for_this_test: ModuleNotFoundError: "
        "No module named 'no_such_module_for_this_test'"
    ]
    assert result["seconds"] >= 0
    assert json.loads(json.dumps(result)) == result  # it travels as JSON


@pytest.mark.slow
def test_warm_up_starts_tensorflow_without_its_start_up_lines_on_the_console():
    # In a fresh process (TensorFlow must not be imported yet), as in a new trial kernel.
    # On a machine without an NVIDIA GPU TensorFlow's import prints the CUDA probe's lines
    # to file descriptor 2; the warm-up logs them instead (at DEBUG: no handler prints them).
    code = (
        "import json; from runner.kernels.inside import warm_up; "
        "print(json.dumps(warm_up({'modules': ['mlflow.keras', 'keras', 'tensorflow']})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["failed"] == []
    for line in ("cuda drivers", "cuInit", "oneDNN", "absl::", "instructions", "I0000", "E0000"):
        assert line not in done.stderr, done.stderr


def _train_defaults() -> dict:
    """The train notebook's parameters cell, evaluated: its defaults."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults: dict = {}
    exec(cell.source, {}, defaults)
    return defaults


@pytest.mark.slow  # check_train_params imports TensorFlow (through lib.model.models)
def test_preflight_returns_the_first_failing_case_or_none(tmp_path):
    for name in (prep.MANIFEST, "train.parquet", "test.parquet"):
        (tmp_path / name).write_text("")
    good = {**_train_defaults(), "data_path": str(tmp_path)}
    cases = [
        {"varied": None, "params": good},
        {"varied": "epochs", "params": {**good, "epochs": 0}},
        {"varied": "bs", "params": {**good, "bs": 0}},
    ]
    assert inside.preflight(cases[:1]) is None
    found = inside.preflight(cases)
    assert found is not None
    assert found["index"] == 1 and found["varied"] == "epochs" and found["name"] == "epochs"
    assert found["error"].startswith("ParameterError: epochs")
    missing = inside.preflight([{"varied": None, "params": {**good, "data_path": "no/such"}}])
    assert missing is not None and missing["name"] == "data_path"


def test_freeze_moves_the_objects_out_of_the_collectors_scans(monkeypatch):
    import gc

    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)
    try:
        inside.freeze()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    monkeypatch.setenv("IMDB_SPEEDUPS", "-gc_freeze")
    inside.freeze()
    assert gc.get_freeze_count() == 0
