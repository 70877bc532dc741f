import os
from pathlib import Path

import pytest

from lib.core import paths


def test_relative_paths_are_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert paths.project_root() == tmp_path.resolve()
    assert paths.resolve("data/processed") == tmp_path.resolve() / "data" / "processed"
    assert paths.resolve("/abs/x") == Path("/abs/x")
    assert paths.notebook_path("train") == tmp_path.resolve() / "notebooks" / "train.ipynb"


def test_new_run_dirs_never_share_a_folder(tmp_path):
    first = paths.new_run_dir("train", base=tmp_path)
    second = paths.new_run_dir("train", base=tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == second.parent == tmp_path and "-train" in second.name


def test_sqlite_path_of_a_url(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert paths.sqlite_path("sqlite:///mlflow.db") == tmp_path.resolve() / "mlflow.db"
    assert paths.sqlite_path("sqlite:////abs/studies.db") == Path("/abs/studies.db")
    assert paths.sqlite_path("sqlite:///:memory:") is None
    assert paths.sqlite_path("postgresql://u@host/db") is None
    assert paths.sqlite_path("https://mlflow.example.org") is None


def test_atomic_write_replaces_the_file_whole_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "model.keras"
    with paths.atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".keras"
        tmp.write_text("new")
        assert not target.exists()  # nothing there until the block ends
    assert target.read_text() == "new"
    assert paths.atomic_write_text(target, "newer ✓") == target
    assert target.read_text(encoding="utf-8") == "newer ✓"
    assert os.listdir(target.parent) == ["model.keras"]


def test_a_failed_atomic_write_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "train.ipynb"
    target.write_text("earlier")
    with pytest.raises(RuntimeError), paths.atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "earlier"
    assert os.listdir(tmp_path) == ["train.ipynb"]


def test_replace_folder_moves_the_earlier_folder_aside(tmp_path):
    new, target, aside = tmp_path / "new", tmp_path / "target", tmp_path / "aside"
    new.mkdir()
    (new / "f").write_text("new")
    assert paths.replace_folder(new, target, aside) is False  # nothing there before
    again = tmp_path / "again"
    again.mkdir()
    (again / "f").write_text("again")
    assert paths.replace_folder(again, target, aside) is True
    assert (target / "f").read_text() == "again" and (aside / "f").read_text() == "new"


def test_replace_folder_puts_the_earlier_folder_back_when_the_rename_fails(tmp_path):
    target, aside = tmp_path / "target", tmp_path / "aside"
    target.mkdir()
    (target / "f").write_text("earlier")
    with pytest.raises(OSError):
        paths.replace_folder(tmp_path / "missing", target, aside)
    assert (target / "f").read_text() == "earlier" and not aside.exists()


@pytest.mark.parametrize(
    "value, words",
    [
        ("notebooks", "notebooks is the project's notebooks folder"),
        ("notebooks/out", "notebooks/out is inside the project's notebooks folder"),
        ("data/../notebooks/x", "is inside the project's notebooks folder"),
        ("linked/x", "linked/x is inside the project's notebooks folder"),  # through a link
    ],
)
def test_an_output_folder_in_the_notebooks_folder_is_refused(tmp_path, monkeypatch, value, words):
    from lib.core.errors import ParameterError

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "notebooks")
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    with pytest.raises(ParameterError) as info:
        paths.check_output_dir("model_dir", value)
    assert info.value.name == "model_dir" and words in str(info.value)
    assert not (tmp_path / "notebooks" / "out").exists()


def test_an_output_folder_elsewhere_is_resolved_and_a_url_kept(tmp_path, monkeypatch):
    from lib.core.errors import ParameterError

    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert paths.check_output_dir("model_dir", "models/latest") == tmp_path / "models" / "latest"
    assert paths.check_output_dir("x", "notebooks-old") == tmp_path / "notebooks-old"
    assert paths.check_output_dir("x", "gs://bucket/notebooks") == "gs://bucket/notebooks"
    # The project root holds notebooks/: fine to write into, not to be replaced whole.
    assert paths.check_output_dir("x", ".") == tmp_path
    with pytest.raises(ParameterError, match="holds the project's notebooks folder"):
        paths.check_output_dir("processed_dir", ".", replaced=True)
    # Relative to another folder (the runner's --output-dir: the working directory).
    elsewhere = tmp_path / "elsewhere"
    assert paths.check_output_dir("x", "notebooks", base=elsewhere) == elsewhere / "notebooks"
    with pytest.raises(ParameterError):
        paths.check_output_dir("x", "../notebooks", base=elsewhere)
