"""A pooled kernel's jupyter_client parts: one event loop for every kernel manager, the
manager, the clients that talk to the kernel (nbclient's and the pool's own), and
:class:`PooledKernel`, which holds them."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.blocking import BlockingKernelClient

from lib.core.speedups import enabled

log = logging.getLogger(__name__)

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _manager_loop() -> asyncio.AbstractEventLoop:
    """One event loop, in its own thread, for every kernel manager's coroutines: their
    control sockets belong to the loop that made them, and a message sent through a
    socket whose loop has closed can arrive later, at another kernel on the same port."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="kernel-managers", daemon=True).start()
        return _loop


def run_managed(coro_or_value: Any, timeout: float | None = None) -> Any:
    """Run a kernel-manager coroutine to completion on the managers' loop (a value that
    is not a coroutine is returned as it is)."""
    if not asyncio.iscoroutine(coro_or_value):
        return coro_or_value
    future = asyncio.run_coroutine_threadsafe(coro_or_value, _manager_loop())
    return future.result(timeout)


class _ReadyClient(AsyncKernelClient):
    """The client nbclient makes for a pooled kernel (the ``ready_client`` trick).
    jupyter_client's ``wait_for_ready`` ends by waiting until IOPub has been silent for
    0.2 s; this one ends when the kernel_info request's own idle status arrives on IOPub,
    which also proves that the subscription is live (otherwise it asks again): 0.2 s less
    for every notebook."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (60.0 if timeout is None else timeout)
        while True:
            msg_id = self.kernel_info()
            if await self._answered(msg_id, deadline):
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    async def _answered(self, msg_id: str, deadline: float) -> bool:
        """Whether the reply to ``msg_id`` came on shell and its idle status on IOPub."""
        while True:  # the reply: up to 1 s
            try:
                msg = await self.shell_channel.get_msg(
                    timeout=max(min(1.0, deadline - time.monotonic()), 0.01)
                )
            except queue.Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                self._handle_kernel_info_reply(msg)
                break
        while True:  # the idle status follows the reply at once if IOPub is subscribed
            try:
                msg = await self.iopub_channel.get_msg(timeout=0.1)
            except queue.Empty:
                return False
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                return True


class QuietShutdownKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose shutdown sends no SIGINT first.

    jupyter_client interrupts a kernel before every shutdown; a SIGINT that lands while
    ipykernel still handles the last request is logged by the kernel as "KeyboardInterrupt
    caught in kernel" (ERROR) after a run that succeeded. The runner's kernels are idle when
    shut down, or already stopped by :class:`runner.execution.watch.KernelWatch`, and the
    shutdown request travels on the control channel, which a busy kernel answers too (past
    half of ``shutdown_wait_time`` it is terminated). Interrupts asked for outside a shutdown
    (``interrupt_kernel``) are sent as before."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


class PooledKernelManager(QuietShutdownKernelManager):
    """An AsyncKernelManager that remembers the clients made from it, so that the pool can
    close the one nbclient opened (nbclient leaves it open for a kernel it does not own)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if enabled("ready_client"):
            self.client_factory = _ReadyClient
        self.pool_clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        kc = super().client(**kwargs)
        self.pool_clients.append(kc)
        return kc

    def close_clients(self) -> None:
        while self.pool_clients:
            kc = self.pool_clients.pop()
            try:
                kc.stop_channels()
            except Exception as exc:  # a client already closed is fine
                log.debug("closing a kernel client: %s", exc)


@dataclass
class PooledKernel:
    """One kernel of a pool: pass ``km`` to papermill (``execute_notebook(..., km=k.km)``)."""

    km: PooledKernelManager
    number: int  # 1, 2, ... in order of start, for the log
    uses: int = 0  # executions lent out so far
    start_seconds: float = 0.0  # kernel start plus warm-up
    warmup_result: dict[str, Any] | None = None  # what inside.warm_up returned
    kc: BlockingKernelClient | None = None  # the pool's own client: warm-up, resets
    stopping: bool = False  # set (under the pool's lock) by whoever shuts it down
    ready: bool = False  # warmed up (and idle or lent)

    @property
    def pid(self) -> int | None:
        provisioner = self.km.provisioner
        return getattr(provisioner, "pid", None) if provisioner else None

    def rss_mib(self) -> float | None:
        """The kernel process's resident memory, MiB (None if it is gone)."""
        import psutil

        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20 if self.pid else None
        except psutil.Error:
            return None

    def process_alive(self) -> bool:
        process = getattr(self.km.provisioner, "process", None) if self.km.provisioner else None
        return process is not None and process.poll() is None


class _PoolClient(BlockingKernelClient):
    """A blocking client whose liveness is the kernel process's (the default, a missed
    heartbeat, reports a kernel that is merely slow to start on a busy machine as dead)."""

    def __init__(self, alive: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._alive = alive

    async def _async_is_alive(self) -> bool:  # what wait_for_ready consults
        return self._alive()

    def is_alive(self) -> bool:
        return self._alive()


def open_client(
    km: AsyncKernelManager, alive: Callable[[], bool], timeout: float
) -> BlockingKernelClient:
    """The pool's own client for the kernel of ``km``, ready (IOPub subscribed); ``alive``
    tells whether the kernel process still runs: one that ends before it is ready raises
    RuntimeError at once."""
    # With the manager as parent, wait_for_ready skips its wait for a heartbeat, which
    # would wait out the whole timeout for a kernel that is gone.
    kc = _PoolClient(alive, parent=km)
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
    except BaseException:
        kc.stop_channels()
        raise
    return kc
