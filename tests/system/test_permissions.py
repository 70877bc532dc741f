"""What the stages write gets the permissions the umask gives, so that a processed data set,
an exported model or a run folder on a shared volume is readable by a teammate's job running
under another uid: never a private temporary folder's 0700 nor a mkstemp file's 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lib.core import paths
from lib.data import prep
from tests.support.datagen import make_raw_dir

UMASKS = [0o022, 0o002]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask-{m:03o}")
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _expected(path: Path, umask: int) -> int:
    return (0o777 if path.is_dir() else 0o666) & ~umask


def _wrong_modes(root: Path, umask: int) -> dict[str, str]:
    """Every path under ``root`` (itself included) whose mode is not the umask's."""
    found = {}
    for path in [root, *root.rglob("*")]:
        if _mode(path) != _expected(path, umask):
            found[str(path.relative_to(root))] = f"{_mode(path):o}"
    return found


def test_a_processed_data_set_gets_the_umask_permissions(tmp_path, umask):
    raw = make_raw_dir(tmp_path / "raw", per_label=3, words=10)
    processed = tmp_path / "shared" / "processed"
    prep.prepare([raw], processed)
    assert sorted(p.name for p in processed.iterdir()) == [
        "manifest.json",
        "test.parquet",
        "train.parquet",
    ]
    assert _wrong_modes(processed, umask) == {}
    # The world can read it under 022 and 002; the group can write it under 002 only.
    assert _mode(processed) & stat.S_IROTH and _mode(processed / "train.parquet") & stat.S_IROTH
    assert bool(_mode(processed) & stat.S_IWGRP) == (umask == 0o002)


def test_a_replaced_data_set_gets_them_too(tmp_path, umask):
    raw = make_raw_dir(tmp_path / "raw", per_label=3, words=10)
    processed = tmp_path / "processed"
    prep.prepare([raw], processed)
    prep.prepare([raw], processed)  # renamed over the earlier one
    assert _wrong_modes(processed, umask) == {}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_new_temp_dir_is_new_empty_and_not_private(tmp_path, umask):
    first = paths.new_temp_dir(tmp_path / "sub", ".x.tmp-")
    second = paths.new_temp_dir(tmp_path / "sub", ".x.tmp-")
    assert first != second and first.parent == tmp_path / "sub"
    assert first.name.startswith(".x.tmp-") and list(first.iterdir()) == []
    assert _mode(first) == 0o777 & ~umask != 0o700


def test_atomic_writes_and_run_folders_get_the_umask_permissions(tmp_path, umask):
    model = tmp_path / "models" / "model.keras"
    with paths.atomic_write(model) as tmp:
        tmp.write_bytes(b"zip")
    text = paths.atomic_write_text(tmp_path / "models" / "manifest.json", "{}")
    run_dir = paths.new_run_dir("train", base=tmp_path / "runs")
    for path in (model, text, model.parent, run_dir, run_dir.parent):
        assert _mode(path) == _expected(path, umask), path
