"""The kernel pool with real kernels: warm kernels lent to notebook executions, reset
between them, replaced past their limits, and none left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

from runner.kernels import KernelCodeError, KernelPool, KernelPoolError
from runner.kernels.pool import START_ATTEMPTS
from tests.support.kernels import gone, output_text, run_cells
from tests.support.runner_process import run_python


def test_a_pool_needs_a_kernel():
    with pytest.raises(ValueError, match="at least one kernel"):
        KernelPool(0)


@pytest.mark.slow
def test_a_lent_kernel_is_warm_and_reset_before_it_is_lent_again():
    with KernelPool(1, warmup_modules=["colorsys", "no_such_module_here"]) as pool:
        kernel = pool.acquire(timeout=120)
        assert kernel.warmup_result["failed"][0].startswith("no_such_module_here: ")
        # IPC transport, its sockets and connection file in the pool's private folder.
        assert kernel.km.transport == "ipc"
        assert Path(kernel.km.connection_file).parent == pool._ipc_dir
        assert pool._ipc_dir.stat().st_mode & 0o077 == 0
        nb = run_cells(kernel.km, "import sys\nprint('colorsys' in sys.modules)", "left = 1")
        assert output_text(nb).strip() == "True"  # warmed up: imported before the notebook
        pool.release(kernel)
        again = pool.acquire(timeout=120)
        assert again is kernel and again.uses == 2
        nb = run_cells(again.km, "print('left' in dir())", "print(2)")
        assert output_text(nb).split() == ["False", "2"]
        assert [c.execution_count for c in nb.cells] == [1, 2]  # a fresh session
        assert pool.stats["started"] == 1 and pool.stats["lent"] == 2
        pool.release(again)
    assert gone([kernel.pid])


@pytest.mark.slow
def test_kernels_are_replaced_after_max_uses_a_failure_or_past_max_rss():
    with KernelPool(1, max_uses=2) as pool:
        first = pool.acquire(timeout=120)
        pool.release(first)
        assert pool.acquire(timeout=120) is first
        pool.release(first)  # its second use: replaced
        second = pool.acquire(timeout=120)
        assert second.pid != first.pid and second.number == 2
        with pytest.raises(CellExecutionError):
            run_cells(second.km, "raise ValueError('this notebook fails')")
        pool.release(second, reuse=False)
        third = pool.acquire(timeout=120)
        assert third.number == 3
        pool.max_rss_mib = 1  # any kernel holds more: replaced after its next use
        pool.release(third)
        fourth = pool.acquire(timeout=120)
        assert fourth.number == 4 and pool.stats["recycled"] == 3
        pool.release(fourth)
    assert gone([first.pid, second.pid, third.pid, fourth.pid])


@pytest.mark.slow
def test_grow_adds_kernels():
    with KernelPool(1) as pool:
        pool.grow(1)
        kernels = [pool.acquire(timeout=120), pool.acquire(timeout=120)]
        assert pool.size == 2 and len({k.pid for k in kernels}) == 2
    assert gone(k.pid for k in kernels)


@pytest.mark.slow
def test_shutdown_ends_every_kernel_a_busy_one_too_and_fails_what_waits():
    pool = KernelPool(2).start()
    busy, idle = pool.acquire(timeout=120), pool.acquire(timeout=120)
    failure: list[BaseException] = []

    def sleep_in_kernel() -> None:
        try:
            pool.call(busy, "time:sleep", 600)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=sleep_in_kernel)
    thread.start()
    pool.shutdown()
    thread.join(timeout=60)
    assert gone([busy.pid, idle.pid])
    assert len(failure) == 1 and isinstance(failure[0], KernelPoolError)
    with pytest.raises(KernelPoolError, match="shut down"):
        pool.acquire(timeout=1)


@pytest.mark.slow
def test_interrupt_stops_what_runs_in_the_kernels():
    with KernelPool(1) as pool:
        kernel = pool.acquire(timeout=120)
        errors: list[BaseException] = []

        def sleep_in_kernel() -> None:
            try:
                pool.call(kernel, "time:sleep", 600)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=sleep_in_kernel)
        thread.start()
        while not errors and thread.is_alive():
            pool.interrupt()  # again, in case the call had not started yet
            thread.join(timeout=1)
        assert isinstance(errors[0], KernelCodeError) and errors[0].ename == "KeyboardInterrupt"
        assert pool.call(kernel, "builtins:abs", -3) == 3


def test_a_pool_whose_kernels_cannot_start_says_so():
    with KernelPool(1, kernel_name="no_such_kernel") as pool:
        with pytest.raises(KernelPoolError, match=f"{START_ATTEMPTS} times in a row"):
            pool.acquire(timeout=120)


@pytest.mark.slow
def test_no_kernel_outlives_the_process_that_forgot_to_shut_its_pool_down():
    pid = run_python(
        """
        from runner.kernels import KernelPool
        pool = KernelPool(1).start()
        print(pool.acquire(timeout=120).pid)
        """
    )
    assert gone([int(pid)])
