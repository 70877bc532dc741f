"""Running ``python -m runner`` as a user would (and other code in a fresh interpreter),
from the project root, for the tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_runner(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m runner ARGS`` with ``env``; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code: str) -> str:
    """``python -c CODE`` (dedented) in a fresh interpreter; its stdout, stripped."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def error_traceback_shown(stderr: str) -> bool:
    """Whether the runner's stderr shows a traceback through the project's code or a
    notebook cell: what a user error must not print. A kernel's own shutdown noise (an
    ipykernel/zmq callback traceback while it exits, rare) goes through neither."""
    project = (f'File "{ROOT / "lib"}', f'File "{ROOT / "runner"}', "Cell In[")
    return any(marker in stderr for marker in project)


# What a line at WARNING or above looks like, whoever printed it: a log record (ours, or
# another library's), a Python warning, absl's W/E/F lines (TensorFlow's C++), a traceback.
_LOUD = re.compile(
    r"\b(WARNING|ERROR|CRITICAL)\b|\w+Warning: |^[WEF]\d{4} |Traceback \(most recent", re.M
)


def loud_lines(text: str) -> list[str]:
    """The lines of a command's output that are at WARNING or above (see ``_LOUD``)."""
    return [line for line in text.splitlines() if _LOUD.search(line)]


# Any control character but \t and \n: none may reach a log that is not a terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A plain console line: time, level, logger, then the message.
PLAIN = re.compile(r"^\d\d:\d\d:\d\d [A-Z]+ [\w.]+: ")


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment for a runner process whose console a test reads: logs under
    ``tmp_path``, no $IMDB_LOG_* of the caller's, this checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMDB_LOG_")}
    return {**env, "LOG_DIR": str(tmp_path / "logs"), "PYTHONPATH": str(ROOT), **extra}
