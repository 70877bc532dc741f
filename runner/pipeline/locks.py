"""One pipeline at a time per stage: an exclusive ``flock`` on a lock file beside the stamps.

The holder writes its pid into the file, so that a pipeline that waits can say whom it waits
for, and name it when it gives up. The kernel releases the lock when the holder's process
ends, however it ends: a killed pipeline leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lib.core.errors import UserError

POLL_S = 0.2


class StageBusy(UserError):
    """Another process held a stage's lock for longer than the timeout."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return "?"
    return text.split()[0] if text else "?"


@contextlib.contextmanager
def stage_lock(
    path: Path,
    stage: str,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
    notice_after: float = 1.0,
) -> Iterator[None]:
    """Hold the lock at ``path`` in the block; wait for another holder at most ``timeout``
    seconds (StageBusy naming its pid after that). ``on_wait(pid)`` is called once, when the
    lock has been found taken for ``notice_after`` seconds (a holder that only decides that
    the stage is up to date lets go sooner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        started = time.monotonic()
        deadline = started + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = _holder(fd)
                now = time.monotonic()
                if not waited and on_wait is not None and now - started >= notice_after:
                    on_wait(pid)
                    waited = True
                if now >= deadline:
                    raise StageBusy(
                        f"{stage}: another pipeline (pid {pid}) has been running this stage for "
                        f"more than {timeout:g} s; wait for it to finish, or stop it "
                        f"(kill {pid}), then run again"
                    ) from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
