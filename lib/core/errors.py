"""One family for the errors a user can fix.

Every error that bad input causes (a parameter, a configuration key, the data, an
unreachable or refusing store or bucket, a model that is not there) is a :class:`UserError`,
raised with a one-line message that names the problem and the fix. One subclass per area.
The runner catches the family by type and exits 2 with that line; anything else is a failed
execution (exit 1).

An error raised inside a notebook kernel reaches the runner only as papermill's
``PapermillExecutionError`` with the exception's class name as a string:
:func:`user_error_class` maps such a name back onto the family.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator


class UserError(Exception):
    """Bad input that the user can fix; ``str()`` is one line naming the problem and the fix."""


class ParameterError(UserError):
    """A notebook parameter or a configuration key has a value that is not allowed.

    ``name`` is the parameter or key (dotted for nested keys: ``search_space.lr.low``).
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class DatasetError(UserError):
    """Raw or processed data cannot be used (missing, wrong layout, nothing left to write).

    Not "DataError": a notebook reports an exception by its class name alone, and pandas has
    a DataError of its own."""


class FetchError(UserError):
    """The data archive cannot be downloaded, copied or extracted."""


class TrackingError(UserError):
    """Tracking was asked for but the MLflow store cannot be used (unreachable, login refused)."""


class StorageError(UserError):
    """A Cloud Storage bucket cannot be used (missing, no credentials, access refused)."""


class ModelError(UserError):
    """A model to load is not where it was said to be, or is not a model of this project."""


class ComparisonError(UserError):
    """A run to compare is not there, or the two runs cannot be compared (one run twice, or
    runs of different stages)."""


class OutputError(UserError):
    """An output location cannot be written: read-only, full, or not permitted. A fault of
    the machine, not of the input, but one line that names the location says what to do."""


# What each fault of the machine means for the one writing, and what to do about it.
_WRITE_FAULTS = {
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.ENOSPC: "no space left on the device; free some space or choose another location",
    errno.EDQUOT: "the disk quota is used up; free some space or choose another location",
    errno.EACCES: "permission denied; choose a location you can write",
    errno.EPERM: "operation not permitted; choose a location you can write",
    errno.ENOTDIR: "a file stands where a folder of its path should be; choose another location",
}


@contextlib.contextmanager
def output_faults(what: str, location: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a read-only, full or forbidden ``location`` met in the block into one
    :class:`OutputError` line (``what`` names the output, e.g. "processed_dir"); any other
    OSError is left as it is."""
    try:
        yield
    except OSError as exc:
        problem = _WRITE_FAULTS.get(exc.errno)
        if problem is None:
            raise
        raise OutputError(f"{what} {os.fspath(location)} cannot be written: {problem}") from None


def _family(cls: type[UserError]) -> list[type[UserError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_family(sub))
    return found


def user_error_class(name: str | None) -> type[UserError] | None:
    """The family's class called ``name`` (an exception name as papermill reports it), else
    None: the error was not one the user can fix by changing the input."""
    if not name:
        return None
    for cls in _family(UserError):
        if cls.__name__ == name:
            return cls
    return None


def first_line(exc: BaseException) -> str:
    """The exception's first non-empty line, or its class name when it has no message."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
