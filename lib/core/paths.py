"""Where the project's files live, in one place, and how they are replaced whole.

Relative paths given to notebooks are resolved against the project root, so the same
defaults work from JupyterLab (whose working directory is ``notebooks/``), from the runner
and from plain papermill run in the project root. A file or folder that others may read is
written beside its place and renamed into it, so a reader never sees half of it. What is
written gets the permissions the umask gives: a data set on a shared volume is read by
teammates' jobs under other uids.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from lib.core.errors import ParameterError, output_faults

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # lib/core/paths.py -> the checkout


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


def notebook_path(name: str) -> Path:
    """The project's notebook called ``name`` (``"train"``: ``notebooks/train.ipynb``)."""
    return notebooks_dir() / f"{name}.ipynb"


def conf_dir() -> Path:
    return project_root() / "conf"


def data_dir() -> Path:
    return project_root() / "data"


def runs_dir() -> Path:
    return project_root() / "runs"


def log_dir() -> Path:
    return Path(os.environ["LOG_DIR"]) if os.environ.get("LOG_DIR") else project_root() / "logs"


def check_output_dir(
    name: str,
    value: str | os.PathLike[str],
    *,
    replaced: bool = False,
    base: Path | None = None,
) -> Path | str:
    """The output folder ``value`` resolved (relative to ``base``, default the project root;
    a URL such as ``gs://B/x`` as it is), or :class:`lib.core.errors.ParameterError` named
    ``name`` if it is the project's ``notebooks/`` folder or inside it, where what a stage
    writes would overwrite the notebooks or lie among them. ``replaced``: the folder is
    replaced whole (prep's ``processed_dir``), so it must not hold ``notebooks/`` either."""
    if "://" in str(value):
        return str(value)
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    path = resolve(path).resolve()  # a link into notebooks/ counts as notebooks/
    notebooks = notebooks_dir().resolve()
    if path == notebooks or path.is_relative_to(notebooks):
        where = "is" if path == notebooks else "is inside"
        raise ParameterError(
            name,
            f"{value} {where} the project's notebooks folder ({notebooks}), whose notebooks "
            "the outputs would overwrite or lie among: choose a folder outside it, e.g. "
            "runs/my-run",
        )
    if replaced and notebooks.is_relative_to(path):
        raise ParameterError(
            name,
            f"{value} holds the project's notebooks folder ({notebooks}), and it is replaced "
            "whole: choose a folder of its own, e.g. data/processed",
        )
    return path


# The run folder of the stage a kernel executes, set by the runner for the kernel it starts
# (the tune notebook puts its trials' folders there).
RUN_DIR_ENV = "RUNNER_RUN_DIR"


def check_writable(what: str, folder: str | os.PathLike[str]) -> Path:
    """``folder`` once a small file could be written in it: a read-only or full location is
    one OutputError line naming ``what`` before the work that would write there, not after
    it. Leaves no trace: the file, and the folders it had to make, are removed again (a
    refused run writes nothing)."""
    path = Path(folder).absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    with output_faults(what, path):
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path) as probe:
                probe.write(b"\0")
                probe.flush()
        finally:
            for made in missing:  # deepest first
                with contextlib.suppress(OSError):
                    made.rmdir()
    return path


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


SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (a relative one taken from the project root,
    as ``sqlite:///mlflow.db``), else None (another URL, or ``sqlite:///:memory:``)."""
    if not url.startswith(SQLITE_PREFIX) or url == f"{SQLITE_PREFIX}:memory:":
        return None
    db = Path(url.removeprefix(SQLITE_PREFIX))
    return db if db.is_absolute() else project_root() / db


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write in the block; renamed onto ``path`` when the
    block ends, removed if it raises. It keeps the suffix (Keras picks its format by it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def new_temp_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder ``parent/<prefix><random>``, made with the permissions the umask
    gives. Not ``tempfile.mkdtemp``: its folder is 0700, and renamed into place it would keep
    a data set from a teammate's job running under another uid."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            path.mkdir()
        except FileExistsError:  # another writer drew the same name: draw again
            continue
        return path


def replace_folder(new: Path, target: Path, aside: Path) -> bool:
    """Rename the folder ``new`` to ``target``. An earlier ``target`` is first renamed to
    ``aside`` (for the caller to remove) and put back if the rename fails, so ``target`` is
    never missing nor half-written. True when there was an earlier folder."""
    earlier = target.exists() or target.is_symlink()
    if earlier:
        target.rename(aside)
    try:
        new.rename(target)
    except OSError:
        if earlier:
            aside.rename(target)
        raise
    return earlier
