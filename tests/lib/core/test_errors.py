"""lib.core.errors: one family for the errors a user can fix, and its name lookup."""

import errno
import os

import pytest

from lib.core import errors
from lib.core.errors import (
    ComparisonError,
    DatasetError,
    FetchError,
    ModelError,
    OutputError,
    ParameterError,
    StorageError,
    TrackingError,
    UserError,
    first_line,
    output_faults,
    user_error_class,
)

AREAS = (
    ParameterError,
    DatasetError,
    FetchError,
    TrackingError,
    StorageError,
    ModelError,
    OutputError,
    ComparisonError,
)


def test_every_area_is_a_user_error_and_nothing_else_in_the_module_is():
    assert all(issubclass(cls, UserError) for cls in AREAS)
    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    assert defined == {UserError, *AREAS}


def test_a_parameter_error_names_its_key_first():
    exc = ParameterError("search_space.lr.low", "0 must be above 0 with log: true")
    assert str(exc) == "search_space.lr.low: 0 must be above 0 with log: true"
    assert exc.name == "search_space.lr.low"
    assert exc.problem == "0 must be above 0 with log: true"


@pytest.mark.parametrize("cls", [UserError, *AREAS])
def test_the_family_is_found_by_the_name_a_kernel_reports(cls):
    assert user_error_class(cls.__name__) is cls


def test_a_subclass_of_an_area_is_found_too():
    class BucketGone(StorageError):
        pass

    assert user_error_class("BucketGone") is BucketGone


@pytest.mark.parametrize(
    "name",
    # pandas' DataError is why the data area is not called DataError.
    ["ValueError", "RuntimeError", "DataError", "KeyboardInterrupt", "", None],
)
def test_other_names_are_not_user_errors(name):
    assert user_error_class(name) is None


def test_first_line_skips_blank_lines_and_falls_back_to_the_class_name():
    assert first_line(RuntimeError("\n  the store is gone  \nTraceback ...")) == "the store is gone"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(KeyError()) == "KeyError"


@pytest.mark.parametrize(
    "code, problem",
    [
        (errno.EROFS, "the file system is read-only"),
        (errno.ENOSPC, "no space left on the device"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_fault_of_the_machine_while_writing_is_one_line_naming_the_output(code, problem):
    with pytest.raises(OutputError) as info, output_faults("model_dir", "/data/models"):
        raise OSError(code, os.strerror(code), "/data/models/x.png")
    assert str(info.value).startswith(f"model_dir /data/models cannot be written: {problem}; ")
    assert info.value.__cause__ is None and "\n" not in str(info.value)


def test_other_os_errors_pass_through_the_output_faults_unchanged():
    with pytest.raises(FileNotFoundError), output_faults("model_dir", "/data/models"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")
