"""The project's git checkout, as runs and model versions record it: its commit and whether
its tree differs from it. Each answer is None when git cannot tell (no git, or the project
is not a checkout): a run is then recorded without it."""

from __future__ import annotations

import subprocess

from lib.core import paths


def _git(*args: str, timeout: float) -> str | None:
    """What ``git -C PROJECT_ROOT ARGS`` prints, None if it fails or cannot run."""
    try:
        done = subprocess.run(
            ["git", "-C", str(paths.project_root()), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def head_commit() -> str | None:
    """The project's git commit (HEAD), or None when the project is not a git checkout."""
    out = _git("rev-parse", "--verify", "HEAD", timeout=10)
    if out is None:
        return None
    return out.strip() or None


def tree_dirty() -> bool | None:
    """Whether the project's checkout differs from its commit (changed, staged or untracked
    files; ignored ones do not count), None when git cannot tell."""
    out = _git("status", "--porcelain", timeout=30)
    return bool(out.strip()) if out is not None else None
