"""Calling functions in a real kernel: data both ways as JSON, errors as exceptions, and
nothing left behind in the kernel."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from runner.kernels import KernelCodeError, KernelPool, KernelPoolError
from runner.kernels.calls import call, expression
from tests.support.kernels import output_text, run_cells

AWKWARD = {
    "quotes": 'it\'s "quoted" \'\'\'and\'\'\' """triple"""',
    "backslashes": "C:\\new\\table \\u0041 \\\\ \\' \\\"",
    "newlines": "one\ntwo\r\nthree\n",
    "unicode": "café – ☃ 🎬 \u2028 \x00 \ud7ff",
    "code": '"); __import__("os")._exit(1); ("',
    "numbers": [0, -1, 2.5, 1e300, True, False, None],
    "nested": {"a": [{"b": []}], "": "empty key"},
}


@pytest.fixture(scope="module")
def kernel():
    with KernelPool(1) as pool:
        yield pool.acquire(timeout=120)


def test_the_call_is_one_line_whatever_the_data():
    line = expression("copy:copy", AWKWARD)
    assert "\n" not in line and "\r" not in line
    assert line.startswith('__import__("json").dumps(')


def test_a_function_spec_must_name_a_module_and_a_function():
    for bad in ("json.loads", ":loads", "json:", "json:not-a-name"):
        with pytest.raises(ValueError, match="package.module:function"):
            expression(bad)


@pytest.mark.slow
def test_data_goes_in_and_comes_back_unchanged(kernel):
    assert call(kernel, "copy:copy", AWKWARD) == AWKWARD
    assert call(kernel, "builtins:sorted", [3, 1, 2]) == [1, 2, 3]
    assert call(kernel, "builtins:str", "") == ""
    assert call(kernel, "gc:collect") >= 0  # no data: called without an argument


@pytest.mark.slow
def test_an_exception_in_the_kernel_is_raised_as_kernel_code_error(kernel):
    with pytest.raises(KernelCodeError) as info:
        call(kernel, "json:loads", "{not json")
    assert info.value.ename == "JSONDecodeError" and "Expecting" in info.value.evalue
    assert info.value.traceback  # IPython's lines for it
    with pytest.raises(KernelCodeError) as info:
        call(kernel, "no_such_package.module:function")
    assert info.value.ename == "ModuleNotFoundError"
    with pytest.raises(KernelCodeError) as info:
        call(kernel, "builtins:set", [1])  # returns what JSON cannot hold
    assert info.value.ename == "TypeError"
    assert call(kernel, "builtins:abs", -1) == 1  # the kernel goes on


@pytest.mark.slow
def test_calls_leave_nothing_in_the_namespace_or_the_history(kernel):
    before = call(kernel, "builtins:dir")  # dir() in the user namespace: its names
    call(kernel, "copy:copy", AWKWARD)
    call(kernel, "runner.kernels.inside:warm_up", {"modules": ["colorsys"]})
    assert call(kernel, "builtins:dir") == before
    nb = run_cells(kernel.km, "import colorsys\nprint(sorted(dir()))")
    assert nb.cells[0].execution_count == 1  # the calls took no execution count
    assert "AWKWARD" not in output_text(nb) and "_exc" not in output_text(nb)


@pytest.mark.slow
def test_a_call_that_takes_too_long_raises_timeout_error():
    with KernelPool(1) as pool:
        kernel = pool.acquire(timeout=120)
        with pytest.raises(TimeoutError, match="time:sleep"):
            call(kernel, "time:sleep", 3, timeout=1)


@pytest.mark.slow
def test_a_call_in_a_kernel_that_dies_or_is_cancelled_raises_kernel_pool_error():
    with KernelPool(1) as pool:
        kernel = pool.acquire(timeout=120)
        call(kernel, "gc:collect")  # the pool's client is open
        os.kill(kernel.pid, signal.SIGKILL)
        with pytest.raises(KernelPoolError, match="died"):
            call(kernel, "time:sleep", 1)
    with KernelPool(1) as pool:
        kernel = pool.acquire(timeout=120)
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        # The call would take 10 minutes: only the cancel can end it (the pool's shutdown
        # then kills the busy kernel).
        with pytest.raises(KernelPoolError, match="cancelled"):
            call(kernel, "time:sleep", 600, timeout=900, cancelled=cancel.is_set)
