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
