"""runner.execution.stopping: what the first and a second SIGTERM/SIGINT do, the escalation after
the
grace, and the PID 1 reaper (on a real zombie child of this process). The handler is called
as the interpreter would call it; the end-to-end cases are in
tests/runner/execution/test_stopping_signals.py
and tests/system/test_container_signals.py."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from runner.execution import stopping, watch
from runner.execution.stopping import OrphanReaper, Stopped, StopSignals
from runner.execution.watch import KernelWatch


@pytest.fixture(autouse=True)
def _signals_and_stop_left_as_found(monkeypatch):
    """The handler sets SIGTERM/SIGINT to SIG_IGN once it raises, and stop_all marks this
    process as stopping: both are put back after each test."""
    monkeypatch.setattr(watch, "_stopping", None)
    before = {s: signal.getsignal(s) for s in (*stopping.SIGNALS, signal.SIGUSR1)}
    yield
    for each, handler in before.items():
        signal.signal(each, handler)


def test_a_signal_with_nothing_running_is_raised_at_once():
    handler = StopSignals()
    with pytest.raises(Stopped) as raised:
        handler.handle(signal.SIGTERM, None)
    assert raised.value.signum == signal.SIGTERM and handler.name == "SIGTERM"
    assert isinstance(raised.value, KeyboardInterrupt)  # every Ctrl-C clean-up runs for it
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the clean-up is not cut short


def test_the_first_signal_stops_the_running_execution_and_a_second_is_raised():
    handler = StopSignals()
    with KernelWatch() as running:  # an execution whose kernel has not started yet
        handler.handle(signal.SIGINT, None)  # returns: the execution stops by itself
        assert running.stop_reason == watch.INTERRUPTED
        with pytest.raises(Stopped) as raised:
            handler.handle(signal.SIGTERM, None)
        handler.cancel()
    assert raised.value.signum == signal.SIGINT  # the first signal's, for the exit status
    with KernelWatch() as later:  # one that starts after the stop is stopped at once
        assert later.stop_reason == watch.INTERRUPTED


def test_a_gentle_stop_past_its_grace_is_raised_in_the_main_thread():
    handler = StopSignals(grace_s=0.3)
    signal.signal(signal.SIGUSR1, handler.handle)
    started = time.monotonic()
    with KernelWatch(), pytest.raises(Stopped) as raised:
        handler.handle(signal.SIGUSR1, None)  # the first: gentle, with a timer
        time.sleep(30)  # what the main thread does meanwhile (nbclient waits for the kernel)
    assert raised.value.signum == signal.SIGUSR1
    assert time.monotonic() - started < 10


def test_the_reaper_collects_a_zombie_that_nobody_waits_for():
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)  # no Popen waits for it

    def zombie() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 10
    while not zombie() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zombie()
    reaper = OrphanReaper(interval=0.2).start()
    try:
        deadline = time.monotonic() + 10
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reaper.stop()
    assert not psutil.pid_exists(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: its status is gone
