"""Where the project's files live, in one place.

Relative paths given to notebooks are resolved against the project root, so the same
defaults work from JupyterLab (whose working directory is ``notebooks/``), from the runner
and from plain papermill run in the project root.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The project root: $PROJECT_ROOT, else the checkout holding ``lib``, else the cwd."""
    env = os.environ.get("PROJECT_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    if (_PACKAGE_PARENT / "notebooks").is_dir():
        return _PACKAGE_PARENT
    return Path.cwd()


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path: ``~`` expanded, relative paths taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def conf_dir() -> Path:
    return project_root() / "conf"


def data_dir() -> Path:
    return project_root() / "data"


def runs_dir() -> Path:
    return project_root() / "runs"


def log_dir() -> Path:
    return Path(os.environ["LOG_DIR"]) if os.environ.get("LOG_DIR") else project_root() / "logs"


# The run folder of the stage a kernel executes, set by the runner for the kernel it starts
# (the tune notebook puts its trials' folders there).
RUN_DIR_ENV = "RUNNER_RUN_DIR"


def new_run_dir(stage: str, base: Path | None = None) -> Path:
    """A fresh ``runs/<UTC time>-<stage>/`` folder (suffixed if that name is taken)."""
    from datetime import UTC, datetime

    base = base or runs_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = base / f"{stamp}-{stage}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stamp}-{stage}-{n}"
    candidate.mkdir(parents=True)
    return candidate
