"""Kernels handed from one pool (the runner's) to another (the tune notebook's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.kernels import (
    HANDOFF_ENV,
    KernelHandoff,
    KernelPool,
    KernelPoolError,
    handoff_env_value,
    take_handoffs,
)
from runner.kernels.handoff import _ProcessHandle, adopt, kill_handoff
from tests.runner.kernels.support import gone


@pytest.fixture(autouse=True)
def handoff_on(monkeypatch):
    """The ``handoff`` trick on, whatever $IMDB_SPEEDUPS says: these tests are its own."""
    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)


def test_hand_offs_travel_through_the_environment_once():
    handoffs = [KernelHandoff("/tmp/k1.json", 101), KernelHandoff("/tmp/k 2.json", 102)]
    env = {HANDOFF_ENV: handoff_env_value(handoffs), "OTHER": "kept"}
    assert take_handoffs(env) == handoffs
    assert env == {"OTHER": "kept"}  # taken: the kernels this process starts never see it
    assert take_handoffs(env) == []


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"a": 1}',
        '[{"pid": 1}]',
        '[{"connection_file": "k.json", "pid": "one"}]',
        "[1]",
    ],
)
def test_a_malformed_hand_off_is_ignored(value, caplog):
    env = {HANDOFF_ENV: value}
    assert take_handoffs(env) == [] and HANDOFF_ENV not in env
    assert HANDOFF_ENV in caplog.text  # the warning names the variable


def test_a_process_handle_sees_a_child_of_another_process_end():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        handle = _ProcessHandle(child.pid)
        assert handle.poll() is None
        handle.kill()
        assert handle.wait(timeout=30) == -1  # ended, though not reaped: a zombie
        assert handle.poll() == -1
    finally:
        child.kill()
        child.wait()
    kill_handoff(KernelHandoff("gone.json", child.pid))  # reaped now: nothing to kill


def test_adopting_a_kernel_whose_file_is_unreadable_fails(tmp_path):
    with pytest.raises(OSError):
        adopt(KernelHandoff(str(tmp_path / "missing.json"), os.getpid()), "python3")


def test_a_pool_adopts_the_kernels_of_another_and_replaces_a_dead_one():
    starter = KernelPool(2, warmup_modules=["colorsys"], handoff_only=True).start()
    try:
        handoffs = starter.handoffs()
        assert len(handoffs) == 2 and all(Path(h.connection_file).is_file() for h in handoffs)
        with pytest.raises(KernelPoolError):
            starter.acquire(timeout=1)  # a hand-off pool lends nothing
        os.kill(handoffs[1].pid, signal.SIGKILL)  # dies before it is adopted
        env = {HANDOFF_ENV: handoff_env_value(handoffs)}
        with KernelPool(2, adopt=take_handoffs(env), warmup_modules=["colorsys"]) as pool:
            kernels = [pool.acquire(timeout=120), pool.acquire(timeout=120)]
            pids = {k.pid for k in kernels}
            assert handoffs[0].pid in pids and handoffs[1].pid not in pids and len(pids) == 2
            adopted = next(k for k in kernels if k.pid == handoffs[0].pid)
            assert pool.call(adopted, "builtins:sorted", [2, 1]) == [1, 2]
            assert adopted.warmup_result is not None and adopted.warmup_result["failed"] == []
            for kernel in kernels:
                pool.release(kernel)
        assert gone(pids)  # the adopter shut the adopted kernel down too
    finally:
        starter.shutdown()
    assert gone(h.pid for h in handoffs)


def test_with_the_trick_off_a_pool_ends_the_hand_offs_and_starts_its_own(monkeypatch):
    with KernelPool(1, handoff_only=True) as starter:
        handoffs = starter.handoffs()
        monkeypatch.setenv("IMDB_SPEEDUPS", "-handoff")
        with KernelPool(1, adopt=handoffs) as pool:
            assert gone(h.pid for h in handoffs)
            assert pool.acquire(timeout=120).pid not in {h.pid for h in handoffs}


def test_hand_offs_the_adopter_did_not_need_are_ended_with_it():
    with KernelPool(2, handoff_only=True) as starter:
        handoffs = starter.handoffs()
        with KernelPool(1, adopt=handoffs) as pool:
            assert pool.acquire(timeout=120).pid == handoffs[0].pid
        assert gone(h.pid for h in handoffs)
