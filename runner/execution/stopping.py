"""SIGTERM (a stopped Polyaxon job, ``docker stop``) and Ctrl-C on ``python -m runner``.

The first signal stops the running execution gently (:func:`runner.execution.watch.stop_all`): its
kernel is interrupted, so the notebook sees a KeyboardInterrupt where it is (a tune
notebook stops its trials, records them and ends its kernels), no further cell starts, and
the runner's hooks still log the partial notebook to its MLflow run, which ends KILLED.
If nothing is running yet (a kernel still starting), if a second signal comes, or if the
gentle stop takes longer than :data:`STOP_GRACE_S`, the signal is raised in the main thread
as a :class:`Stopped` (a KeyboardInterrupt: every clean-up a Ctrl-C runs runs for it).
Either way, what is left of the processes that were this process's descendants when the
first signal came is ended before the runner exits (:func:`end_processes`).

As a container's PID 1 (``docker run --entrypoint python IMAGE -m runner ...``), with no
tini to do it, the runner also reaps the orphans that are handed to it
(:class:`OrphanReaper`) and ends every process left in the container before it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from runner.execution import watch

# The gentle stop of a stage (a tune's trials interrupted, their notebooks logged, every
# kernel shut down) within a stopped job's grace period (Kubernetes' default is 30 s).
STOP_GRACE_S = 25.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT raised in the main thread; ``processes``: this process's
    descendants when the first signal came."""

    def __init__(self, signum: int, processes: list[Any]) -> None:
        super().__init__()
        self.signum = signum
        self.processes = processes


class StopSignals:
    """The handler of SIGTERM and SIGINT while one command runs (see the module)."""

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None  # the first signal, once it came
        self.processes: list[Any] = []
        self._timer: threading.Timer | None = None

    def handle(self, signum: int, _frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            # Taken now: once the stage's kernel is shut down, the trial kernels it started
            # are no longer this process's descendants.
            self.processes = descendants()
            if watch.stop_all(watch.INTERRUPTED):
                self._timer = threading.Timer(self.grace_s, os.kill, (os.getpid(), signum))
                self._timer.daemon = True
                self._timer.start()
                return
        # Once raised, no further signal cuts the clean-up short (the kubelet follows with
        # SIGKILL after the grace period anyway).
        for each in SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise Stopped(self.signum, self.processes)

    def cancel(self) -> None:
        """The command is over: no escalation, and a stopped one is not stopped again."""
        if self._timer is not None:
            self._timer.cancel()
        if self.signum is not None and threading.current_thread() is threading.main_thread():
            for each in SIGNALS:
                signal.signal(each, signal.SIG_IGN)

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Handle SIGTERM and SIGINT (in the main thread only: a test may call ``main`` from
    another); as PID 1, also reap orphans meanwhile and end every process left at exit."""
    handler = StopSignals()
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, handler.handle) for s in SIGNALS} if in_main else {}
    reaper = OrphanReaper().start() if os.getpid() == 1 else None
    try:
        yield handler
    finally:
        handler.cancel()
        if reaper is not None:
            reaper.stop()
            end_container_processes()
        for each, before in previous.items():
            signal.signal(each, before)


def descendants() -> list[Any]:
    """This process's descendants (psutil processes)."""
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def end_processes(processes: list[Any], grace: float = 10.0) -> None:
    """End what the clean-up left alive of ``processes``: a kernel that the signal caught
    while it started (nbclient had no hold on it yet), the trial kernels of a tune kernel
    that was killed. SIGTERM first, SIGKILL after ``grace`` seconds."""
    import psutil

    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()  # psutil checks the pid is still that process
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def reap_zombies(only: set[int] | None = None) -> list[int]:
    """Collect the exit status of this process's zombie children (of ``only`` those, when
    given); their pids."""
    import psutil

    reaped = []
    for child in descendants_direct():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if (only is None or child.pid in only) and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
                reaped.append(child.pid)
    return reaped


def descendants_direct() -> list[Any]:
    import psutil

    try:
        return psutil.Process().children()
    except psutil.Error:
        return []


class OrphanReaper:
    """As PID 1: reap the zombies that nobody else waits for. A zombie child is reaped
    once it has been seen twice, ``interval`` apart: a child of the runner's own (a
    ``subprocess.run``) is waited for by its Popen at once, and must keep its status."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orphan-reaper", daemon=True)

    def start(self) -> OrphanReaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psutil

        seen: set[int] = set()
        while not self._stop.wait(self.interval):
            zombies = set()
            for child in descendants_direct():
                with contextlib.suppress(psutil.Error):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        zombies.add(child.pid)
            reap_zombies(zombies & seen)
            seen = zombies


def end_container_processes(grace: float = 5.0) -> None:
    """As PID 1, at exit: end every other process of the container (nothing may outlive
    the command), then reap them all."""
    import psutil

    others = []
    for proc in psutil.process_iter():
        if proc.pid != os.getpid():
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    others.append(proc)
    if others:
        end_processes(others, grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left
        if pid == 0:
            time.sleep(0.05)
