"""Jupyter kernels started ahead of the notebooks that will use them, and reused.

Starting a kernel and importing TensorFlow, Keras and MLflow costs seconds, far more than a
short training. A :class:`KernelPool` starts its kernels in the background, runs a warm-up
snippet in each (the imports), and hands a warm kernel to each notebook execution through
papermill/nbclient's ``km=`` argument: nbclient then uses that kernel instead of starting
one, and leaves it running. After the execution the pool resets the kernel's namespace
(``get_ipython().reset(new_session=True)``: variables, outputs and execution counts go;
imported modules stay) and lends it again, so the next notebook runs with the imports
already done. A kernel is shut down and replaced instead ("recycled") after a failed
execution, after ``max_uses`` executions, or when its memory after the reset exceeds
``max_rss_mib``.

Kernels are children of this process: ipykernel's parent poller ends them if this process
dies, and :meth:`KernelPool.shutdown` (also on ``with`` exit and at interpreter exit) ends
them otherwise.

Kernels can also be started by one process and used by another ("handed off"): the runner
starts the tune notebook's trial kernels (``handoff_only``) before it even starts the tune
notebook's own kernel, and passes their connection files and pids in ``$RUNNER_KERNEL_HANDOFF``;
the tune notebook's pool adopts them (``adopt=``) instead of starting its own, so TensorFlow
is being imported while papermill and the tune kernel start. An adopted kernel stays a child
of the process that started it, which ends whatever is left of it when it is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.provisioning import LocalProvisioner

from lib.speedups import kernel_arguments

log = logging.getLogger(__name__)

# The kernel resets after each notebook: a run that a failed notebook left active is ended
# as FAILED (its hook has already marked it so), Keras and matplotlib state is dropped, and
# IPython's namespace, output history and execution counter start afresh.
RESET_CODE = """\
import sys as _sys
if "mlflow" in _sys.modules:
    while _sys.modules["mlflow"].active_run() is not None:
        _sys.modules["mlflow"].end_run(status="FAILED")
if "keras" in _sys.modules:
    _sys.modules["keras"].backend.clear_session()
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
get_ipython().reset(new_session=True)
__import__("gc").collect()
try:  # hand freed heap back to the system, so that the RSS limit sees what is in use
    __import__("ctypes").CDLL("libc.so.6").malloc_trim(0)
except (OSError, AttributeError):
    pass
"""

START_ATTEMPTS = 3  # kernel starts that may fail in a row before the pool gives up
FREEZE_CODE = "__import__('gc').freeze()\n"

# nbclient starts its own kernels with an in-memory IPython history; the pool does the same
# (concurrent kernels would otherwise contend for one history.sqlite). Its kernels skip the
# slow imports that nothing uses, as the runner's own do.
_KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:", *kernel_arguments()]


HANDOFF_ENV = "RUNNER_KERNEL_HANDOFF"


@dataclass(frozen=True)
class KernelHandoff:
    """A running kernel that another process may adopt: its connection file and pid."""

    connection_file: str
    pid: int


def handoff_env_value(handoffs: list[KernelHandoff]) -> str:
    return json.dumps([{"connection_file": h.connection_file, "pid": h.pid} for h in handoffs])


def take_handoffs(environ: dict[str, str] | None = None) -> list[KernelHandoff]:
    """The kernels handed to this process in ``$RUNNER_KERNEL_HANDOFF``, removed from the
    environment (they are adopted once, and the kernels this process starts must not see
    them). Malformed values are ignored with a warning: the pool then starts its own."""
    environ = os.environ if environ is None else environ
    value = environ.pop(HANDOFF_ENV, None)
    if not value:
        return []
    try:
        return [KernelHandoff(str(h["connection_file"]), int(h["pid"])) for h in json.loads(value)]
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring $%s (%s); the pool starts its own kernels", HANDOFF_ENV, exc)
        return []


class _ProcessHandle:
    """A ``Popen``-like handle on a kernel process that another process started (and will
    reap): a process that has exited, or is a zombie waiting for its parent, has ended."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        import psutil

        self.pid = pid
        self.returncode: int | None = None
        self._process = psutil.Process(pid)  # NoSuchProcess if it is gone already

    def poll(self) -> int | None:
        import psutil

        if self.returncode is None:
            try:
                # is_running() also tells a reused pid from the kernel's.
                ended = (
                    not self._process.is_running() or self._process.status() == psutil.STATUS_ZOMBIE
                )
            except psutil.Error:
                ended = True
            if ended:
                self.returncode = -1  # the exit status belongs to the parent
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel process {self.pid} still running")
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class AdoptedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner for a kernel that is already running: signals,
    polling and waiting go to its pid; nothing is launched."""

    def adopt(self, pid: int) -> None:
        self.process = _ProcessHandle(pid)
        self.pid = pid
        try:
            pgid = os.getpgid(pid)
        except OSError:
            pgid = None
        # Its own process group (jupyter_client starts kernels in a new session), or only
        # the process is signalled: never a group it shares with others.
        self.pgid = pgid if pgid == pid else None


class KernelPoolError(RuntimeError):
    """The pool could not provide a kernel (it failed to start, or the pool is shut down)."""


class KernelCodeError(RuntimeError):
    """Code the pool ran in a kernel raised; ``ename``/``evalue``/``traceback`` say what."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self.ename, self.evalue, self.traceback = ename, evalue, traceback
        super().__init__(f"{ename}: {evalue}")


class _ReadyClient(AsyncKernelClient):
    """The client nbclient makes for a pooled kernel. jupyter_client's ``wait_for_ready``
    ends by waiting until IOPub has been silent for 0.2 s; this one ends when the
    kernel_info request's own idle status arrives on IOPub, which also proves that the
    subscription is live (otherwise it asks again): 0.2 s less for every notebook."""

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


class PooledKernelManager(AsyncKernelManager):
    """An AsyncKernelManager that remembers the clients made from it, so that the pool can
    close the one nbclient opened (nbclient leaves it open for a kernel it does not own)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_factory = _ReadyClient
        self.pool_clients: list[Any] = []

    def client(self, **kwargs: Any):
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
    warmup_output: str = ""
    kc: BlockingKernelClient | None = None  # the pool's own client: warm-up, resets
    stopping: bool = False  # set (under the pool's lock) by whoever shuts it down
    ready: bool = False  # warmed up (and idle or lent); never, when warmed for a hand-off

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


def _run(coro_or_value: Any, timeout: float | None = None) -> Any:
    """Run a kernel-manager coroutine to completion on the managers' loop."""
    if not asyncio.iscoroutine(coro_or_value):
        return coro_or_value
    future = asyncio.run_coroutine_threadsafe(coro_or_value, _manager_loop())
    return future.result(timeout)


class _PoolClient(BlockingKernelClient):
    """A blocking client whose liveness is the kernel process's (the default, a missed
    heartbeat, reports a kernel that is merely slow to start on a busy machine as dead)."""

    def __init__(self, kernel: PooledKernel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kernel = kernel

    async def _async_is_alive(self) -> bool:  # what wait_for_ready consults
        return self._kernel.process_alive()

    def is_alive(self) -> bool:
        return self._kernel.process_alive()


def _open_client(kernel: PooledKernel, timeout: float) -> BlockingKernelClient:
    kc = _PoolClient(kernel)
    kc.load_connection_info(kernel.km.get_connection_info())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)  # also makes sure IOPub is subscribed
    except BaseException:
        kc.stop_channels()
        raise
    return kc


def run_code(
    kernel: PooledKernel,
    code: str,
    timeout: float = 600.0,
    cancelled: Callable[[], bool] | None = None,
) -> str:
    """Execute ``code`` in ``kernel`` (not stored in its history); return its printed output.

    Uses the kernel's own client, opened once (a new client costs 0.2 s to get ready).
    Raises KernelCodeError if the code raises; KernelPoolError if the kernel dies or
    ``cancelled()`` turns true; TimeoutError after ``timeout`` seconds.
    """
    if kernel.kc is None:
        kernel.kc = _open_client(kernel, timeout)
    kc = kernel.kc
    deadline = time.monotonic() + timeout
    msg_id = kc.execute(code, silent=False, store_history=False, allow_stdin=False)
    chunks: list[str] = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            if not kernel.process_alive():
                raise KernelPoolError(f"kernel {kernel.number} died") from None
            if cancelled is not None and cancelled():
                raise KernelPoolError("cancelled: the pool is shutting down") from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kernel {kernel.number}: no result in {timeout:.0f} s"
                ) from None
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            chunks.append(content["text"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    while True:  # the reply follows the idle status
        reply = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 5.0))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    if content["status"] != "ok":
        raise KernelCodeError(
            content.get("ename", "Error"),
            content.get("evalue", ""),
            content.get("traceback", []),
        )
    return "".join(chunks)


class KernelPool:
    """``size`` warm kernels, lent one at a time to notebook executions.

    >>> with KernelPool(2, warmup_code="import pandas") as pool:  # doctest: +SKIP
    ...     kernel = pool.acquire()
    ...     papermill.execute_notebook(src, dst, km=kernel.km)
    ...     pool.release(kernel, reuse=True)
    """

    def __init__(
        self,
        size: int,
        *,
        warmup_code: str = "",
        kernel_name: str = "python3",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        max_uses: int | None = None,
        max_rss_mib: float | None = None,
        startup_timeout: float = 300.0,
        adopt: list[KernelHandoff] | tuple[KernelHandoff, ...] = (),
        handoff_only: bool = False,
    ) -> None:
        """``adopt``: running kernels (handed off by another process) to use before
        starting new ones. ``handoff_only``: this pool only starts and warms its kernels up
        for another process to adopt (:meth:`handoffs`); it never lends or resets them."""
        if size < 1:
            raise ValueError(f"a kernel pool needs at least one kernel, not {size}")
        self.size = size
        self.warmup_code = warmup_code
        self.kernel_name = kernel_name
        self.cwd = str(cwd) if cwd else None
        self.env = dict(env) if env is not None else None
        self.max_uses = max_uses
        self.max_rss_mib = max_rss_mib
        self.startup_timeout = startup_timeout
        self.stats: dict[str, Any] = {"started": 0, "recycled": 0, "lent": 0, "start_seconds": []}
        self._idle: queue.Queue[PooledKernel | BaseException] = queue.Queue()
        self._kernels: dict[int, PooledKernel] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._start_failures = 0  # in a row
        self._count = 0
        self._ipc_dir = Path(tempfile.mkdtemp(prefix="kpool-"))
        self._starters: list[threading.Thread] = []
        self._adoptable = list(adopt)
        self.handoff_only = handoff_only
        self._launched = threading.Condition(self._lock)
        # At interpreter exit (weakref.finalize runs then too) no kernel is left behind.
        self._finalizer = weakref.finalize(
            self, _shutdown_all, self._kernels, self._lock, self._ipc_dir
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> KernelPool:
        """Start all kernels in the background; returns at once."""
        for _ in range(self.size):
            self._start_one_in_background()
        return self

    def grow(self, more: int) -> None:
        """Start ``more`` kernels besides the pool's (in the background)."""
        self.size += more
        for _ in range(more):
            self._start_one_in_background()

    def __enter__(self) -> KernelPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _is_closed(self) -> bool:
        return self._closed

    def handoffs(self, timeout: float = 30.0) -> list[KernelHandoff]:
        """The pool's kernels, for another process to adopt, once each has been launched
        (``timeout`` seconds at most; a kernel that failed to launch is left out)."""
        deadline = time.monotonic() + timeout
        with self._launched:
            while len(self._kernels) < self.size and any(t.is_alive() for t in self._starters):
                if not self._launched.wait(timeout=max(deadline - time.monotonic(), 0)):
                    break
            kernels = sorted(self._kernels.values(), key=lambda k: k.number)
        return [KernelHandoff(k.km.connection_file, k.pid) for k in kernels if k.pid is not None]

    def shutdown(self) -> None:
        """Shut every kernel down, those still warming up too."""
        with self._lock:
            self._closed = True
            starters = list(self._starters)
        _shutdown_all(self._kernels, self._lock)
        with self._lock:
            unused, self._adoptable = self._adoptable, []
        for handoff in unused:  # handed to this pool, but more than it needed
            _kill_handoff(handoff)
        for thread in starters:  # a warming kernel's starter stops within a second
            thread.join(timeout=30)
        # Any that finished starting meanwhile; then the sockets' folder.
        _shutdown_all(self._kernels, self._lock, self._ipc_dir)
        while True:  # wake any acquire() still waiting
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        self._idle.put(KernelPoolError("the kernel pool is shut down"))

    # -- lending -------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> PooledKernel:
        """A warm, idle kernel; waits for one (``timeout`` seconds at most, default the
        startup timeout). Raises KernelPoolError if kernels fail to start."""
        try:
            item = self._idle.get(timeout=timeout or self.startup_timeout)
        except queue.Empty:
            raise KernelPoolError(
                f"no kernel became ready within {timeout or self.startup_timeout:.0f} s"
            ) from None
        if isinstance(item, BaseException):
            self._idle.put(item)  # every later acquire fails at once too
            if isinstance(item, KernelPoolError):
                raise item
            raise KernelPoolError(
                f"kernels failed to start {START_ATTEMPTS} times in a row; the last: "
                f"{type(item).__name__}: {item}"
            ) from item
        item.uses += 1
        self.stats["lent"] += 1
        return item

    def release(self, kernel: PooledKernel, reuse: bool = True) -> None:
        """Take ``kernel`` back after an execution: reset and lend it again when ``reuse``
        (the execution succeeded) and it is within its limits, else replace it."""
        kernel.km.close_clients()
        reason = None if reuse else "the execution failed"
        if reason is None and self.max_uses is not None and kernel.uses >= self.max_uses:
            reason = f"it ran {kernel.uses} notebooks (max_uses)"
        if reason is None and self._closed:
            reason = "the pool is shut down"
        if reason is None:
            try:
                run_code(kernel, RESET_CODE, timeout=120)
            except Exception as exc:
                reason = f"its reset failed ({exc})"
        if reason is None and self.max_rss_mib is not None:
            rss = kernel.rss_mib()
            if rss is None or rss > self.max_rss_mib:
                reason = f"it holds {rss or 0:.0f} MiB after reset (max_rss_mib {self.max_rss_mib})"
        if reason is None:
            self._idle.put(kernel)
            return
        log.info("kernel %d replaced: %s", kernel.number, reason)
        self.stats["recycled"] += 1
        if not reuse:
            # Settle what the failed notebook left (an active MLflow run is ended FAILED),
            # or MLflow's exit handler would mark it FINISHED when the kernel stops.
            try:
                run_code(kernel, RESET_CODE, timeout=10)
            except Exception as exc:
                log.debug("kernel %d not reset before shutdown: %s", kernel.number, exc)
        self._stop(kernel)
        if not self._closed:
            self._start_one_in_background()

    def interrupt(self) -> None:
        """Interrupt every kernel (what is running in them fails, and they are replaced)."""
        with self._lock:
            kernels = list(self._kernels.values())
        for kernel in kernels:
            try:
                _run(kernel.km.interrupt_kernel())
            except Exception as exc:
                log.warning("could not interrupt kernel %d: %s", kernel.number, exc)

    def warm(self, kernel: PooledKernel, code: str, timeout: float = 600.0) -> str:
        """Run ``code`` in an acquired kernel, then reset its namespace; returns the output."""
        try:
            return run_code(kernel, code, timeout=timeout)
        finally:
            run_code(kernel, RESET_CODE, timeout=120)

    # -- internals -----------------------------------------------------------------------

    def _start_one_in_background(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._count += 1
            number = self._count
            handoff = self._adoptable.pop(0) if self._adoptable else None
            thread = threading.Thread(
                target=self._start_one,
                args=(number, handoff),
                name=f"kernel-pool-start-{number}",
            )
            self._starters = [t for t in self._starters if t.is_alive()] + [thread]
        thread.daemon = True
        thread.start()

    def _launch(self, number: int) -> PooledKernelManager:
        # IPC (Unix sockets in the pool's own folder): no TCP port to pick, so no race with
        # other processes for a port that was free a moment ago (kernels died of it).
        km = PooledKernelManager(
            kernel_name=self.kernel_name, transport="ipc", ip=str(self._ipc_dir / f"k{number}")
        )
        kwargs: dict[str, Any] = {"extra_arguments": list(_KERNEL_ARGS)}
        if self.cwd:
            kwargs["cwd"] = self.cwd
        if self.env is not None:
            kwargs["env"] = self.env
        try:
            _run(km.start_kernel(**kwargs))
        except BaseException:
            if km.has_kernel:
                _run(km.shutdown_kernel(now=True))
            raise
        return km

    def _adopt(self, handoff: KernelHandoff) -> PooledKernelManager:
        """A manager for a kernel another process started (see :class:`KernelHandoff`)."""
        km = PooledKernelManager(kernel_name=self.kernel_name)
        km.load_connection_file(handoff.connection_file)
        provisioner = AdoptedProvisioner(
            kernel_id=km.kernel_id or "",
            kernel_spec=km.kernel_spec,
            connection_info=km.get_connection_info(),
            parent=km,
        )
        provisioner.adopt(handoff.pid)
        km.provisioner = provisioner
        if provisioner.process.poll() is not None:
            raise KernelPoolError(f"handed-off kernel (pid {handoff.pid}) has exited")
        return km

    def _start_one(self, number: int, handoff: KernelHandoff | None = None) -> None:
        started = time.perf_counter()
        kernel = None
        try:
            km = None
            if handoff is not None:
                try:
                    km = self._adopt(handoff)
                    log.debug("kernel %d adopted (pid %d)", number, handoff.pid)
                except Exception as exc:  # gone, or unreadable: start one instead
                    log.warning(
                        "could not adopt kernel pid %d (%s); starting one", handoff.pid, exc
                    )
                    _kill_handoff(handoff)
            if km is None:
                km = self._launch(number)
            kernel = PooledKernel(km=km, number=number)
            with self._launched:
                self._kernels[id(kernel)] = kernel
                self._launched.notify_all()
            if self.warmup_code:
                kernel.warmup_output = run_code(
                    kernel, self.warmup_code, self.startup_timeout, cancelled=self._is_closed
                )
            if not self.handoff_only:
                # What exists now (imported modules, mostly) lives as long as the kernel:
                # frozen, the garbage collector skips it; each reset takes ms, not ~0.8 s.
                run_code(kernel, FREEZE_CODE, timeout=120)
                run_code(kernel, RESET_CODE, timeout=120)
        except BaseException as exc:
            if kernel is not None:
                self._stop(kernel)
            with self._launched:
                self._launched.notify_all()
            with self._lock:
                self._start_failures += 1
                give_up = self._start_failures >= START_ATTEMPTS or self._closed
            if self._closed:
                log.debug("kernel %d stopped while starting: the pool is shut down", number)
                self._idle.put(exc)
            elif self.handoff_only:  # the adopting process starts its own instead
                log.info("kernel %d for hand-off failed to start: %s", number, exc)
            elif give_up:
                log.error("kernel %d failed to start: %s", number, exc)
                self._idle.put(exc)
            else:
                log.warning("kernel %d failed to start (%s); starting another", number, exc)
                self._start_one_in_background()
            return
        with self._lock:
            self._start_failures = 0
        kernel.start_seconds = time.perf_counter() - started
        self.stats["started"] += 1
        self.stats["start_seconds"].append(round(kernel.start_seconds, 2))
        with self._lock:
            closed = self._closed
        if closed:
            self._stop(kernel)
            return
        log.info(
            "kernel %d %s in %.1f s (pid %s)",
            number,
            "warmed up for hand-off" if self.handoff_only else "ready",
            kernel.start_seconds,
            kernel.pid,
        )
        if not self.handoff_only:  # a handed-off kernel is the adopting pool's to lend
            kernel.ready = True
            self._idle.put(kernel)

    def _stop(self, kernel: PooledKernel) -> None:
        with self._lock:
            self._kernels.pop(id(kernel), None)
            claimed = _claim(kernel)
        if claimed:
            _stop_kernel(kernel)


def _stop_kernel(kernel: PooledKernel) -> None:
    km = kernel.km
    km.close_clients()
    if kernel.kc is not None:
        if kernel.ready and kernel.process_alive():
            try:  # the kernel's exit then skips a last full collection: ~1.5 s faster
                run_code(kernel, FREEZE_CODE, timeout=5)
            except Exception:
                pass
        kernel.kc.stop_channels()
        kernel.kc = None
    try:
        if km.has_kernel:
            # A kernel still warming up is busy: asked to shut down, it would fail to send
            # its reply (and print a traceback); it has nothing to save, so it is killed.
            # So is a handed-off one: its adopter has shut it down, or has failed.
            _run(km.shutdown_kernel(now=not kernel.ready))
    except Exception as exc:
        log.warning("kernel %d did not shut down cleanly: %s", kernel.number, exc)
        try:
            _run(km.shutdown_kernel(now=True))
        except Exception:
            pass


def _kill_handoff(handoff: KernelHandoff) -> None:
    """End a handed-off kernel this process will not use (its parent reaps it)."""
    try:
        _ProcessHandle(handoff.pid).kill()
    except Exception as exc:  # already gone
        log.debug("handed-off kernel pid %d not killed: %s", handoff.pid, exc)


def _claim(kernel: PooledKernel) -> bool:
    """Whether the caller (holding the pool's lock) is the one to stop ``kernel``."""
    if kernel.stopping:
        return False
    kernel.stopping = True
    return True


def _shutdown_all(
    kernels: dict[int, PooledKernel], lock: threading.Lock, ipc_dir: Path | None = None
) -> None:
    with lock:
        todo = [k for k in kernels.values() if _claim(k)]
        kernels.clear()
    threads = [threading.Thread(target=_stop_kernel, args=(k,)) for k in todo]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if ipc_dir is not None:
        shutil.rmtree(ipc_dir, ignore_errors=True)
