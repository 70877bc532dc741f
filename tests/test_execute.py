"""runner.execute: one notebook executed headlessly, and how each way of failing is told apart.

Each test executes a tiny notebook written into ``tmp_path`` (a real kernel, no mocks).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from runner.execute import Execution, execute_stage
from runner.stages import Stage


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
        "from lib.errors import DatasetError\n"
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
def test_a_dead_kernel_is_reported_as_such(tmp_path):
    execution = _run(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert not execution.ok and not execution.user_error
    assert execution.error.startswith("the kernel died during execution")


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
