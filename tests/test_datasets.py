import numpy as np
import pytest

from lib import datasets, prep
from lib.errors import ParameterError
from tests.datagen import make_raw_dir


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
