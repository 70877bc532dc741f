"""stdout closed by its reader (``python -m runner status | head -4``): told apart from other
broken pipes, and quietly put aside so that nothing more is written into it."""

from __future__ import annotations

import os
import select
import signal
import sys

# The exit status of a command that SIGPIPE ends, as the shell reports it.
EXIT_STATUS = 128 + signal.SIGPIPE


def stdout_closed() -> bool:
    """Whether stdout is a pipe or socket whose reader has gone (a BrokenPipeError met
    elsewhere, on a connection to a server, is a failure like any other)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file
        return False
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever the mask
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def put_stdout_aside() -> int:
    """Point stdout at /dev/null, so that Python's flush at exit finds no closed pipe (and
    prints no traceback of its own); the exit status to return."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EXIT_STATUS
