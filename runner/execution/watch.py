"""The kernel of one notebook execution, watched while it runs.

A :class:`KernelWatch` goes with each execution of the runner's engine
(``runner.execution.engine``):

- a thread samples the kernel process's resident memory (psutil), so that a kernel that
  dies says how much it held last (:meth:`KernelWatch.death`, "the kernel died: killed by
  SIGKILL, probably out of memory; last measured 2.1 GiB");
- a time limit (``time_limit_s``): past it the kernel is interrupted, then killed if it
  has not stopped within ``grace_s``;
- a stop request (:meth:`KernelWatch.stop`, what :func:`stop_all` asks of every execution
  of this process on SIGTERM or Ctrl-C): the kernel is interrupted the same way, and the
  engine starts no further cell.

Signals go to the kernel process itself, never to its group or its children: a tune
kernel's trial kernels are stopped by the tune kernel, which watches their executions.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

KILL_GRACE_S = 20.0  # an interrupted kernel that has not stopped by then is killed
INTERRUPTED = "interrupted"
_SAMPLE_S = 0.5

_running: set[KernelWatch] = set()
# Re-entrant: stop_all runs in a signal handler, which may interrupt this thread holding it.
_running_lock = threading.RLock()
_stopping: str | None = None  # the reason of stop_all, for executions that start after it


def size_text(n_bytes: float) -> str:
    """``2.1 GiB`` or ``512 MiB``."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / 2**20:.0f} MiB"


def exit_text(returncode: int | None) -> str:
    """How a process ended, from its exit status (a negative one is the signal's number)."""
    if returncode is None:
        return "its exit status is unknown"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        # The kernel's out-of-memory killer sends SIGKILL; nothing else here does, unless a
        # limit or a person did.
        return f"killed by {name}" + (", probably out of memory" if name == "SIGKILL" else "")
    return f"exited with code {returncode}"


def describe_death(returncode: int | None, last_rss: float | None) -> str:
    """One line for a kernel that died during an execution."""
    measured = f"; last measured {size_text(last_rss)}" if last_rss else ""
    return f"the kernel died: {exit_text(returncode)}{measured}"


def _process_of(km: Any) -> Any:
    """The kernel's ``subprocess.Popen`` (None before it is launched)."""
    provisioner = getattr(km, "provisioner", None) if km is not None else None
    return getattr(provisioner, "process", None) if provisioner is not None else None


class KernelWatch:
    """Watches the kernel of one execution: bind it to the notebook client, ``start`` it
    with the execution and ``finish`` it after (a context manager does both)."""

    def __init__(self, time_limit_s: float | None = None, grace_s: float = KILL_GRACE_S) -> None:
        self.time_limit_s = time_limit_s
        self.grace_s = grace_s
        self.stop_reason: str | None = None
        self.cell_index: int | None = None  # the cell running now (set by the notebook client)
        self.last_rss: float | None = None  # bytes
        self.returncode: int | None = None  # once the kernel has ended
        self._client: Any = None
        self._process: Any = None
        self._started = 0.0
        self._stop_at: float | None = None  # when the stop was asked (monotonic)
        self._killed = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def bind(self, client: Any) -> None:
        """The notebook client whose kernel (``client.km``) to watch."""
        self._client = client

    def __enter__(self) -> KernelWatch:
        self._started = time.monotonic()
        with _running_lock:
            _running.add(self)
            early = _stopping
        if early:
            self.stop(early)
        self._thread = threading.Thread(target=self._watch, name="kernel-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        with _running_lock:
            _running.discard(self)
        if self._thread is not None:
            self._thread.join(timeout=5)
        process = self._process or _process_of(getattr(self._client, "km", None))
        if process is not None:
            self.returncode = process.poll()

    # -- what the engine and the runner ask -----------------------------------------------

    def stop(self, reason: str, grace_s: float | None = None) -> None:
        """Stop the execution: no further cell starts, the running one is interrupted, and
        the kernel is killed if it is still busy after ``grace_s`` (default the watch's)."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        if grace_s is not None:
            self.grace_s = grace_s
        self._stop_at = time.monotonic()
        self._signal(signal.SIGINT)

    def death(self) -> str:
        """One line for a kernel that died during the execution."""
        return describe_death(self.returncode, self.last_rss)

    # -- internals -----------------------------------------------------------------------

    def _signal(self, signum: int) -> None:
        process = self._find_process()
        if process is None or process.poll() is not None:
            return  # not started yet (the engine refuses its cells), or gone
        with contextlib.suppress(OSError):
            process.send_signal(signum)  # Popen checks that it has not been reaped

    def _find_process(self) -> Any:
        if self._process is None:
            self._process = _process_of(getattr(self._client, "km", None))
        return self._process

    def _watch(self) -> None:
        import psutil

        proc: Any = None
        while True:  # a sample at once, then one every _SAMPLE_S
            process = self._find_process()
            if process is not None and proc is None:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(process.pid)
            if proc is not None and process.poll() is None:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    rss = 0
                if rss:  # a zombie's is 0: the last measure is the living kernel's
                    self.last_rss = rss
            now = time.monotonic()
            if self.time_limit_s and self.stop_reason is None:
                if now - self._started > self.time_limit_s:
                    log.warning(
                        "execution timed out after %g s: interrupting its kernel", self.time_limit_s
                    )
                    self.stop(f"timed out after {self.time_limit_s:g} s")
            if self._stop_at is not None and not self._killed:
                if now - self._stop_at > self.grace_s:
                    log.warning(
                        "the kernel did not stop within %g s of its interrupt: killed", self.grace_s
                    )
                    self._killed = True
                    self._signal(signal.SIGKILL)
            if self._done.wait(_SAMPLE_S):
                return


def stop_all(reason: str = INTERRUPTED, grace_s: float | None = None) -> bool:
    """Stop every execution of this process (see :meth:`KernelWatch.stop`), and any that
    starts later; whether one was running."""
    global _stopping
    with _running_lock:
        _stopping = reason
        watches = list(_running)
    for watch in watches:
        watch.stop(reason, grace_s)
    return bool(watches)
