"""Jupyter kernels started ahead of the notebooks that will use them, and reused.

Starting a kernel and importing TensorFlow, Keras and MLflow costs seconds, far more than a
short training. A :class:`KernelPool` starts its kernels in the background, warms each up
(:func:`runner.kernels.inside.warm_up` imports the given modules) and lends it to a notebook
execution through papermill/nbclient's ``km=`` argument: nbclient uses that kernel instead
of starting one, and leaves it running. The pool then resets it
(:func:`runner.kernels.inside.reset`: variables, outputs and execution counts go, imported
modules stay) and lends it again. A kernel is shut down and replaced instead ("recycled")
after a failed execution, after ``max_uses`` executions, or when its memory after the reset
exceeds ``max_rss_mib``.

Kernels are children of this process: ipykernel's parent poller ends them if this process
dies, and :meth:`KernelPool.shutdown` (also on ``with`` exit and at interpreter exit) ends
them otherwise.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.core.speedups import kernel_arguments
from runner.kernels import calls
from runner.kernels.calls import KernelPoolError
from runner.kernels.clients import PooledKernel, PooledKernelManager, run_managed

log = logging.getLogger(__name__)

START_ATTEMPTS = 3  # kernel starts that may fail in a row before the pool gives up
INSIDE = "runner.kernels.inside"

# nbclient starts its own kernels with an in-memory IPython history; the pool does the same
# (concurrent kernels would otherwise contend for one history.sqlite). Its kernels run the
# runner's kernel start line, as the runner's own do.
_KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:", *kernel_arguments()]


class KernelPool:
    """``size`` warm kernels, lent one at a time to notebook executions.

    Examples:
        >>> with KernelPool(2, warmup_modules=["pandas"]) as pool:  # doctest: +SKIP
        ...     kernel = pool.acquire()
        ...     papermill.execute_notebook(src, dst, km=kernel.km)
        ...     pool.release(kernel, reuse=True)
    """

    def __init__(
        self,
        size: int,
        *,
        warmup_modules: Sequence[str] = (),
        kernel_name: str = "python3",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        max_uses: int | None = None,
        max_rss_mib: float | None = None,
        startup_timeout: float = 300.0,
    ) -> None:
        """``warmup_modules``: imported in each kernel before it is lent."""
        if size < 1:
            raise ValueError(f"a kernel pool needs at least one kernel, not {size}")
        self.size = size
        self.warmup_modules = list(warmup_modules)
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

    def shutdown(self) -> None:
        """Shut every kernel down, those still warming up or lent too."""
        with self._lock:
            self._closed = True
            starters = list(self._starters)
        _shutdown_all(self._kernels, self._lock)
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

    def call(
        self, kernel: PooledKernel, function: str, data: Any = None, timeout: float = 600.0
    ) -> Any:
        """Call ``function`` (``"pkg.module:name"``) with the JSON-able ``data`` in an
        acquired ``kernel``; its JSON-able return value. Raises KernelCodeError if it
        raises, KernelPoolError if the kernel dies or the pool shuts down, TimeoutError."""
        return calls.call(kernel, function, data, timeout, cancelled=self._is_closed)

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
                calls.call(kernel, f"{INSIDE}:reset", timeout=120)
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
                calls.call(kernel, f"{INSIDE}:reset", timeout=10)
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
                run_managed(kernel.km.interrupt_kernel())
            except Exception as exc:
                log.warning("could not interrupt kernel %d: %s", kernel.number, exc)

    # -- internals -----------------------------------------------------------------------

    def _start_one_in_background(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._count += 1
            number = self._count
            thread = threading.Thread(
                target=self._start_one, args=(number,), name=f"kernel-pool-start-{number}"
            )
            self._starters = [t for t in self._starters if t.is_alive()] + [thread]
        thread.daemon = True
        thread.start()

    def _launch(self, number: int) -> PooledKernelManager:
        # IPC (Unix sockets in the pool's own folder): no TCP port to pick, so no race with
        # other processes for a port that was free a moment ago (kernels died of it).
        # Its connection file there too (the folder is private: mkdtemp's mode 0700).
        km = PooledKernelManager(
            kernel_name=self.kernel_name,
            transport="ipc",
            ip=str(self._ipc_dir / f"k{number}"),
            connection_file=str(self._ipc_dir / f"k{number}.json"),
        )
        kwargs: dict[str, Any] = {"extra_arguments": list(_KERNEL_ARGS)}
        if self.cwd:
            kwargs["cwd"] = self.cwd
        if self.env is not None:
            kwargs["env"] = self.env
        try:
            run_managed(km.start_kernel(**kwargs))
        except BaseException:
            if km.has_kernel:
                run_managed(km.shutdown_kernel(now=True))
            raise
        return km

    def _warm_up(self, kernel: PooledKernel) -> None:
        if self.warmup_modules:
            kernel.warmup_result = self.call(  # stops within a second on shutdown
                kernel, f"{INSIDE}:warm_up", {"modules": self.warmup_modules}, self.startup_timeout
            )
        # What exists now (imported modules, mostly) lives as long as the kernel: frozen,
        # the garbage collector skips it; each reset takes ms, not ~0.8 s.
        calls.call(kernel, f"{INSIDE}:freeze", timeout=120)
        calls.call(kernel, f"{INSIDE}:reset", timeout=120)

    def _start_one(self, number: int) -> None:
        started = time.perf_counter()
        kernel = None
        try:
            kernel = PooledKernel(km=self._launch(number), number=number)
            with self._lock:
                self._kernels[id(kernel)] = kernel
            self._warm_up(kernel)
        except BaseException as exc:
            self._start_failed(number, kernel, exc)
            return
        with self._lock:
            self._start_failures = 0
            closed = self._closed
        kernel.start_seconds = time.perf_counter() - started
        self.stats["started"] += 1
        self.stats["start_seconds"].append(round(kernel.start_seconds, 2))
        if closed:
            self._stop(kernel)
            return
        failed = (kernel.warmup_result or {}).get("failed") or []
        log.info(
            "kernel %d ready in %.1f s (pid %s)%s",
            number,
            kernel.start_seconds,
            kernel.pid,
            # left for the notebook that imports them to report in its own words
            f"; imports that failed: {'; '.join(failed)}" if failed else "",
        )
        kernel.ready = True
        self._idle.put(kernel)

    def _start_failed(self, number: int, kernel: PooledKernel | None, exc: BaseException) -> None:
        if kernel is not None:
            self._stop(kernel)
        with self._lock:
            self._start_failures += 1
            give_up = self._start_failures >= START_ATTEMPTS or self._closed
        if self._closed:
            log.debug("kernel %d stopped while starting: the pool is shut down", number)
            self._idle.put(exc)
        elif give_up:
            log.error("kernel %d failed to start: %s", number, exc)
            self._idle.put(exc)
        else:
            log.warning("kernel %d failed to start (%s); starting another", number, exc)
            self._start_one_in_background()

    def _stop(self, kernel: PooledKernel) -> None:
        with self._lock:
            self._kernels.pop(id(kernel), None)
            claimed = _claim(kernel)
        if claimed:
            _stop_kernel(kernel)


def _stop_kernel(kernel: PooledKernel) -> None:
    # No gc.freeze is asked for here: the kernel's start line has it freeze as it exits.
    km = kernel.km
    km.close_clients()
    if kernel.kc is not None:
        kernel.kc.stop_channels()
        kernel.kc = None
    try:
        if km.has_kernel:
            # A kernel still warming up is busy: asked to shut down, it would fail to send
            # its reply (and print a traceback); it has nothing to save, so it is killed.
            run_managed(km.shutdown_kernel(now=not kernel.ready))
    except Exception as exc:
        log.warning("kernel %d did not shut down cleanly: %s", kernel.number, exc)
        try:
            run_managed(km.shutdown_kernel(now=True))
        except Exception:
            pass


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
