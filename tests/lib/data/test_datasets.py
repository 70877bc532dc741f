import shutil

import numpy as np
import pytest

from lib.core.errors import DatasetError, ParameterError
from lib.data import datasets, prep
from tests.support.datagen import make_raw_dir


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20)], root / "processed")
    return root / "processed"


def test_stratified_split_is_deterministic_disjoint_and_complete():
    labels = np.array([0] * 60 + [1] * 40)
    train, val = datasets.stratified_split(labels, 0.25, seed=4002)
    again = datasets.stratified_split(labels, 0.25, seed=4002)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert (labels[val] == 0).sum() == 15 and (labels[val] == 1).sum() == 10
    other = datasets.stratified_split(labels, 0.25, seed=1)[1]
    assert not np.array_equal(val, other)


def test_load_splits_train_into_train_and_validation(processed):
    data = datasets.load(processed, 0.25, seed=4002)
    assert data.train.counts() == {"total": 30, "pos": 15, "neg": 15}
    assert data.val.counts() == {"total": 10, "pos": 5, "neg": 5}
    assert data.test.counts() == {"total": 40, "pos": 20, "neg": 20}
    assert not set(data.train.texts) & set(data.val.texts)
    assert data.manifest["rows"]["train"]["total"] == 40


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "abc"])
def test_bad_val_split_is_named(processed, value):
    with pytest.raises(ParameterError, match="^val_split: "):
        datasets.load(processed, value, seed=1)


def test_val_split_that_leaves_too_few_rows(processed):
    with pytest.raises(ParameterError, match="at least 2 reviews"):
        datasets.load(processed, 0.01, seed=1)


def test_data_path_missing_or_not_processed(tmp_path):
    with pytest.raises(ParameterError, match=r"^data_path: .*nope does not exist.*runner prep"):
        datasets.load(tmp_path / "nope", 0.2, seed=1)
    (tmp_path / "train.parquet").write_text("x")
    with pytest.raises(ParameterError, match=r"^data_path: .*lacks train.parquet, test.parquet"):
        datasets.load(tmp_path, 0.2, seed=1)


@pytest.mark.parametrize("name", ["train.parquet", "test.parquet", "manifest.json"])
def test_a_truncated_processed_file_is_one_line_saying_re_run_prep(processed, tmp_path, name):
    copy = tmp_path / "processed"
    shutil.copytree(processed, copy)
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[: len(data) // 2])  # cut in half, as by a full disk
    with pytest.raises(DatasetError) as info:
        datasets.load(copy, 0.25, seed=1)
    message = str(info.value)
    assert message.startswith(f"processed data file {copy / name} cannot be read")
    assert message.endswith("re-run prep to write the data set again") and "\n" not in message


# -- the data_cache trick -------------------------------------------------------------------


@pytest.fixture
def cache_on(monkeypatch):
    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)


def test_a_second_load_reuses_the_first_read_only(processed, cache_on):
    first = datasets.load(processed, 0.25, seed=4002)
    hits = datasets._LOADED.hits
    second = datasets.load(processed, 0.25, seed=4002)
    assert datasets._LOADED.hits == hits + 1
    assert second.train.texts is first.train.texts and second.test.labels is first.test.labels
    # New wrappers: replacing a part or editing the manifest leaves the kept one alone.
    second.train = None
    second.manifest["rows"] = {}
    third = datasets.load(processed, 0.25, seed=4002)
    assert third.train.texts is first.train.texts and third.manifest["rows"]["train"]
    with pytest.raises(ValueError, match="read-only"):
        third.train.texts[0] = "changed"
    with pytest.raises(ValueError, match="read-only"):
        third.val.labels[0] = 1


def test_another_split_or_seed_or_rewritten_data_is_loaded_anew(processed, tmp_path, cache_on):
    first = datasets.load(processed, 0.25, seed=4002)
    for val_split, seed in ((0.3, 4002), (0.25, 1)):
        other = datasets.load(processed, val_split, seed=seed)
        assert other.train.texts is not first.train.texts
        plain = datasets._load(processed, val_split, seed)
        assert np.array_equal(other.train.texts, plain.train.texts)
    # prep writes a new data set and renames it into place: new files, a new key.
    out = tmp_path / "processed"
    prep.prepare([make_raw_dir(tmp_path / "raw", per_label=20, seed=7)], out)
    before = datasets.load(out, 0.25, seed=4002)
    prep.prepare([make_raw_dir(tmp_path / "raw2", per_label=20, seed=8)], out)
    after = datasets.load(out, 0.25, seed=4002)
    assert not np.array_equal(before.test.texts, after.test.texts)
    assert np.array_equal(after.test.texts, datasets._load(out, 0.25, 4002).test.texts)


def test_with_the_trick_off_every_load_reads_the_files(processed, monkeypatch):
    monkeypatch.setenv("IMDB_SPEEDUPS", "-data_cache")
    first = datasets.load(processed, 0.25, seed=4002)
    second = datasets.load(processed, 0.25, seed=4002)
    assert second.train.texts is not first.train.texts
    assert np.array_equal(second.train.texts, first.train.texts)
    first.train.texts[0] = "a plain array, writable as before"
