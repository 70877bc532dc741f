"""runner.pipeline.locks: a stage's lock held by another pipeline is waited for, then refused
naming the process that holds it; a released lock is taken at once.
"""

from __future__ import annotations

import os

import pytest

from runner.pipeline.locks import StageBusy, stage_lock


def test_a_busy_stage_fails_after_the_timeout_naming_the_other_process(tmp_path):
    lock = tmp_path / "train.lock"
    seen = []
    with stage_lock(lock, "train", timeout=1):
        with pytest.raises(StageBusy, match=rf"another pipeline \(pid {os.getpid()}\)"):
            with stage_lock(lock, "train", timeout=0.3, on_wait=seen.append, notice_after=0):
                pass
    assert seen == [str(os.getpid())]
    with stage_lock(lock, "train", timeout=0):  # released
        pass
