"""runner.cli.closed_pipe: stdout closed by its reader, told apart from other broken pipes."""

from __future__ import annotations

import io
import os
import sys

from runner.cli import closed_pipe


def test_only_a_stdout_whose_reader_has_gone_counts_as_closed(monkeypatch):
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert not closed_pipe.stdout_closed()  # a reader still there
        os.close(read_end)
        assert closed_pipe.stdout_closed()
        assert closed_pipe.put_stdout_aside() == 141
        stdout.write("more than a pipe holds\n" * 10_000)
        stdout.flush()  # into /dev/null now: no BrokenPipeError
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # no file behind it
    assert not closed_pipe.stdout_closed()
