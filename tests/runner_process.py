"""Running ``python -m runner`` as a user would, from the project root, for the tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
