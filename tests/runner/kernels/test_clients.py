"""The pool's jupyter_client parts with a real kernel: the managers' loop, the manager
that remembers its clients, the client that is ready on kernel_info, the pool's client."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest
from jupyter_client import AsyncKernelClient

from lib.core.speedups import enabled
from runner.kernels.clients import (
    PooledKernel,
    PooledKernelManager,
    _ReadyClient,
    open_client,
    run_managed,
)
from tests.support.kernels import gone, wait_until


@pytest.fixture
def kernel(tmp_path):
    km = PooledKernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "k"))
    run_managed(km.start_kernel())
    yield PooledKernel(km=km, number=1)
    km.close_clients()
    if km.has_kernel:
        run_managed(km.shutdown_kernel(now=True))


def test_manager_coroutines_run_on_one_loop_in_its_own_thread():
    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    first, second = run_managed(where()), run_managed(where())
    assert first == second and first[0] != threading.get_ident()
    assert run_managed(42) == 42  # what is no coroutine is passed through


def test_the_ready_client_is_the_manager_s_unless_the_trick_is_off(monkeypatch):
    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)
    assert PooledKernelManager().client_factory is _ReadyClient
    monkeypatch.setenv("IMDB_SPEEDUPS", "-ready_client")
    assert PooledKernelManager().client_factory is AsyncKernelClient


@pytest.mark.slow
def test_the_ready_client_talks_to_the_kernel_and_the_manager_closes_it(kernel):
    kc = kernel.km.client()
    assert isinstance(kc, _ReadyClient if enabled("ready_client") else AsyncKernelClient)
    kc.start_channels()

    async def ready_then_run():
        await kc.wait_for_ready(timeout=60)
        return await kc.execute_interactive("1 + 1", timeout=60)

    reply = run_managed(ready_then_run())
    assert reply["content"]["status"] == "ok"
    assert kernel.km.pool_clients == [kc]
    kernel.km.close_clients()
    assert kernel.km.pool_clients == [] and not kc.channels_running


@pytest.mark.slow
def test_the_pool_client_is_alive_while_its_process_is(kernel):
    kc = open_client(kernel.km, kernel.process_alive, timeout=60)
    try:
        assert kc.is_alive() and kernel.process_alive()
        assert kernel.rss_mib() > 1 and kernel.pid == kernel.km.provisioner.pid
        os.kill(kernel.pid, signal.SIGKILL)
        # its exit status, once all its threads have ended (a zombie leader comes first)
        assert wait_until(lambda: not kernel.process_alive())
        assert not kc.is_alive()
    finally:
        kc.stop_channels()


@pytest.mark.slow
def test_the_pool_client_of_a_kernel_that_died_fails_at_once(kernel):
    os.kill(kernel.pid, signal.SIGKILL)
    assert gone([kernel.pid])
    with pytest.raises(RuntimeError, match="died"):  # not "didn't respond in 600 seconds"
        open_client(kernel.km, kernel.process_alive, timeout=600)


def test_a_shutdown_sends_no_interrupt_but_an_interrupt_asked_for_is_sent():
    """jupyter_client interrupts before every shutdown: an idle kernel caught in the tail of
    a request logs "KeyboardInterrupt caught in kernel" at ERROR after a run that succeeded."""
    import asyncio

    from runner.execution.engine import IpcKernelManager
    from runner.kernels.clients import PooledKernelManager

    for cls in (IpcKernelManager, PooledKernelManager):
        km = cls()
        with pytest.raises(RuntimeError, match="Cannot interrupt kernel"):  # no kernel: tried
            asyncio.run(km._async_interrupt_kernel())
        km.shutting_down = True
        asyncio.run(km._async_interrupt_kernel())  # skipped: nothing to raise
        with pytest.raises(RuntimeError, match="Cannot interrupt kernel"):
            asyncio.run(km.interrupt_kernel())  # the watch's and the pool's own interrupts
