"""runner.execution.execute: one notebook executed headlessly, and how each way of failing is told
apart.

Each test executes a tiny notebook written into ``tmp_path`` (a real kernel, no mocks)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lib.core.errors import OutputError
from runner.execution.execute import Execution, execute_stage
from runner.execution.watch import INTERRUPTED, KernelWatch
from runner.stages import Stage
from tests.support.signals import cell_running


def _stage(tmp_path: Path, *cells: str) -> Stage:
    """A stage whose notebook is a parameters cell (``x = 1``) and then ``cells``."""
    parameters = new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    nb = new_notebook(cells=[parameters, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return Stage("tiny", str(path), "a notebook made by the test")  # an absolute path wins


def _run(tmp_path: Path, *cells: str, **kwargs) -> Execution:
    kwargs.setdefault("render", False)
    return execute_stage(_stage(tmp_path, *cells), run_dir=tmp_path / "run", **kwargs)


@pytest.mark.slow
def test_a_notebook_that_succeeds_leaves_its_scraps_notebook_and_html(tmp_path):
    seen = []
    execution = _run(
        tmp_path,
        "import scrapbook as sb\nsb.glue('answer', x * 2)",
        parameters={"x": 21},
        render=True,
        hooks=[seen.append],
    )
    assert execution.ok and not execution.user_error, execution.error
    assert execution.scraps == {"answer": 42}
    assert execution.output_path == tmp_path / "run" / "tiny.ipynb"
    assert execution.html_path == tmp_path / "run" / "tiny.html" and execution.html_path.is_file()
    assert seen == [execution]  # the hooks see the finished execution


@pytest.mark.slow
def test_a_family_error_is_a_user_error_with_its_one_line_and_no_traceback(tmp_path):
    execution = _run(
        tmp_path,
        "from lib.core.errors import DatasetError\n"
        "raise DatasetError('no reviews in /x: pass the folder that holds train/ and test/')",
    )
    assert execution.user_error
    assert execution.error.endswith(
        ": DatasetError: no reviews in /x: pass the folder that holds train/ and test/"
    )
    assert execution.error.startswith("cell ") and "\n" not in execution.error
    assert not execution.error_detail
    assert execution.output_path.is_file()  # the partial notebook


@pytest.mark.slow
def test_any_other_exception_is_a_failure_with_its_traceback(tmp_path):
    execution = _run(
        tmp_path, "def explode():\n    raise RuntimeError('boom\\nsecond line')", "explode()"
    )
    assert not execution.ok and not execution.user_error
    assert execution.error.endswith(": RuntimeError: boom")  # one line
    assert "explode()" in execution.error_detail and "second line" in execution.error_detail


@pytest.mark.slow
def test_secrets_are_masked_in_the_error_and_the_notebook(tmp_path, monkeypatch):
    secret = "Qm4-distinctive-Secret-7Zp"
    monkeypatch.setenv("DEMO_PASSWORD", secret)  # the kernel inherits it
    execution = _run(
        tmp_path, "import os\nraise RuntimeError('failed with ' + os.environ['DEMO_PASSWORD'])"
    )
    assert execution.error.endswith("RuntimeError: failed with ********")
    assert secret not in execution.error_detail and "********" in execution.error_detail
    assert secret not in execution.output_path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_kernel_killed_by_a_signal_says_so_with_its_last_memory(tmp_path):
    # 300 MiB held for a second (the watch samples every 0.5 s), then SIGKILL, as the
    # out-of-memory killer sends it.
    execution = _run(
        tmp_path,
        "import os, signal, time\nheld = bytearray(300 * 2**20)\ntime.sleep(1.5)\n"
        "os.kill(os.getpid(), signal.SIGKILL)",
    )
    assert not execution.ok and not execution.user_error and execution.status == "FAILED"
    prefix = "the kernel died: killed by SIGKILL, probably out of memory; last measured "
    assert execution.error.startswith(prefix), execution.error
    measured = execution.error[len(prefix) :].split(";")[0]
    number, unit = measured.split()
    assert unit == "MiB" and 300 < float(number) < 1024, measured


@pytest.mark.slow
def test_a_kernel_that_exits_says_with_which_code(tmp_path):
    execution = _run(tmp_path, "import os\nos._exit(3)")
    assert execution.error.startswith("the kernel died: exited with code 3"), execution.error
    assert "out of memory" not in execution.error


@pytest.mark.slow
def test_an_execution_past_its_time_limit_is_interrupted(tmp_path):
    execution = _run(tmp_path, "import time\ntime.sleep(600)", "ran_after = True", time_limit_s=2)
    assert execution.error == "timed out after 2 s (cell 1)" and execution.status == "FAILED"
    assert not execution.interrupted and not execution.pruned
    nb = nbformat.read(execution.output_path, as_version=4)
    assert not any(c.get("execution_count") for c in nb.cells if "ran_after" in c.source)


@pytest.mark.slow
def test_a_kernel_that_ignores_its_interrupt_is_killed_after_the_grace(tmp_path):
    execution = _run(
        tmp_path,
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(600)",
        watch=KernelWatch(2, grace_s=2),
    )
    # killed, the kernel names no cell: the error still does (the one it was running)
    assert execution.error == "timed out after 2 s (cell 1)", execution.error
    assert execution.seconds < 30


@pytest.mark.slow
def test_a_stopped_execution_is_interrupted_and_runs_no_further_cell(tmp_path):
    watch = KernelWatch()
    notebook = tmp_path / "run" / "tiny.ipynb"
    stopper = threading.Thread(
        target=lambda: (
            _wait_until_running(notebook, "sleep"),
            # papermill saves the cell's start before the kernel takes it, and ipykernel
            # ignores SIGINT until then: a stop in that window was lost once under load.
            time.sleep(2),
            watch.stop(INTERRUPTED),
        )
    )
    stopper.start()
    execution = _run(tmp_path, "import time\ntime.sleep(600)", "ran_after = True", watch=watch)
    stopper.join()
    assert execution.error == "interrupted (cell 1)" and execution.interrupted
    assert execution.status == "KILLED" and not execution.error_detail
    nb = nbformat.read(notebook, as_version=4)
    assert not any(c.get("execution_count") for c in nb.cells if "ran_after" in c.source)


PRUNED = """\
class TrialPruned(Exception):
    def _render_traceback_(self):
        return ["Trial pruned at epoch 2: val_loss 0.71 is worse than the median"]

import scrapbook as sb
sb.glue("pruned_at_epoch", 2)
raise TrialPruned("pruned at epoch 2")
"""


@pytest.mark.slow
def test_a_pruned_trial_is_no_failure_and_its_notebook_has_no_error_banner(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="runner.execution.execute")
    execution = _run(tmp_path, PRUNED, "ran_after = True", render=True)
    assert execution.pruned and not execution.interrupted and execution.status == "KILLED"
    assert execution.error == "cell 1: TrialPruned: pruned at epoch 2"  # the trial's error
    assert not execution.error_detail and not execution.user_error
    assert execution.scraps == {"pruned_at_epoch": 2}
    text = execution.output_path.read_text(encoding="utf-8")
    assert "An Exception was encountered" not in text
    assert "An Exception was encountered" not in execution.html_path.read_text(encoding="utf-8")
    assert "Trial pruned at epoch 2: val_loss 0.71" in text  # its one line
    (record,) = [
        r for r in caplog.records if r.name == "runner.execution.execute" and "tiny " in r.message
    ]
    assert "pruned: cell 1: TrialPruned" in record.message and "failed" not in record.message
    assert record.levelno == logging.INFO


def _wait_until_running(notebook: Path, code: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cell_running(notebook, code) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.slow
def test_a_cell_past_the_timeout_is_reported_as_a_timeout(tmp_path):
    execution = _run(tmp_path, "import time\ntime.sleep(600)", execution_timeout=5)
    assert not execution.ok and not execution.user_error
    assert execution.error.startswith("execution timed out")


def test_an_unknown_kernel_is_a_user_error_naming_it(tmp_path):
    execution = _run(tmp_path, "pass", kernel_name="no-such-kernel-here")
    assert execution.user_error
    assert "no Jupyter kernel named 'no-such-kernel-here'" in execution.error
    assert "jupyter kernelspec list" in execution.error


def test_a_run_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path, read_only_dir):
    run_dir = read_only_dir / "run"
    with pytest.raises(OutputError) as info:  # before any kernel starts
        execute_stage(_stage(tmp_path, "y = 2"), run_dir=run_dir, render=False)
    assert str(info.value).startswith(f"run folder {run_dir} cannot be written: ")
    assert "read-only" in str(info.value)


@pytest.mark.slow
def test_a_full_run_folder_is_a_user_error_with_one_line_naming_it(tmp_path, full_dir):
    execution = execute_stage(_stage(tmp_path, "y = 2"), run_dir=full_dir, render=False)
    assert execution.user_error and not execution.error_detail
    assert execution.error.startswith(f"run folder {full_dir} cannot be written: no space left")
