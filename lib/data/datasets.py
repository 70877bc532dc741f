"""Processed data sets: loading them, and the deterministic train/validation split.

With the ``data_cache`` speed trick (:mod:`lib.core.speedups`), a process keeps the last data set
it loaded, keyed by its files' identity (device, inode, size, modification and change
times: prep replaces a data set by renaming a new folder into place), ``val_split`` and
``seed``: the next trial in the same kernel gets it in no time. Its arrays are read-only, so
no caller can change what the next one gets.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core import paths, speedups
from lib.core.errors import DatasetError, ParameterError, first_line
from lib.core.params import check_float, not_allowed
from lib.data import prep


@dataclass
class Split:
    """Texts (cleaned) and labels (0/1) of one part of the data."""

    texts: np.ndarray  # dtype object (str)
    labels: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        pos = int(self.labels.sum())
        return {"total": len(self), "pos": pos, "neg": len(self) - pos}


@dataclass
class Data:
    train: Split
    val: Split
    test: Split
    manifest: dict[str, Any]

    def shared_copy(self) -> Data:
        """A new ``Data`` holding the same (read-only) arrays and a copy of the manifest."""
        return Data(
            *(Split(s.texts, s.labels) for s in (self.train, self.val, self.test)),
            copy.deepcopy(self.manifest),
        )


_LOADED: speedups.Memo[Data] = speedups.Memo("datasets.load", size=1)
_FILES = ("train.parquet", "test.parquet", prep.MANIFEST)


def check_data_path(name: str, value: str | os.PathLike[str]) -> Path:
    """The resolved processed data folder, or ParameterError naming what is wrong."""
    path = paths.resolve(value)
    if not path.exists():
        raise ParameterError(
            name,
            f"{path} does not exist: run `python -m runner prep` first, or give the "
            "processed_dir that prep wrote",
        )
    if not prep.is_processed_dir(path):
        raise ParameterError(
            name,
            f"{path} is not a processed data set (it lacks train.parquet, test.parquet or "
            "manifest.json): give the processed_dir that prep wrote",
        )
    return path


def _unreadable(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(
        f"processed data file {path} cannot be read ({type(exc).__name__}: "
        f"{first_line(exc)[:200]}): re-run prep to write the data set again"
    )


def _read_split(path: Path) -> Split:
    try:
        table = pq.read_table(path, columns=["text", "label"])
    except (OSError, pa.ArrowException) as exc:  # truncated, corrupt, unreadable
        raise _unreadable(path, exc) from None
    texts = table["text"].combine_chunks()
    if isinstance(texts, pa.ChunkedArray):  # pragma: no cover - older pyarrow
        texts = texts.combine_chunks()
    return Split(
        np.asarray(texts.to_numpy(zero_copy_only=False), dtype=object),
        table["label"].to_numpy().astype(np.int32),
    )


def load(data_path: str | os.PathLike[str], val_split: float, seed: int) -> Data:
    """Train/validation (stratified by label, deterministic for a seed) and test splits."""
    val_split = check_float("val_split", val_split, 0, 1)
    path = check_data_path("data_path", data_path)
    if not speedups.enabled("data_cache"):
        return _load(path, val_split, seed)
    key = (str(path), _files_identity(path), val_split, int(seed))
    return _LOADED.get(key, lambda: _read_only(_load(path, val_split, seed))).shared_copy()


def load_test(path: str | os.PathLike[str]) -> Split:
    """The test split of the processed data set at ``path`` (a folder that
    :func:`check_data_path` accepted): every review the train notebook evaluates on."""
    return _read_split(Path(path) / "test.parquet")


def _files_identity(path: Path) -> tuple[tuple[int, ...], ...]:
    identity = []
    for name in _FILES:
        st = (path / name).stat()
        identity.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(identity)


def _read_only(data: Data) -> Data:
    for split in (data.train, data.val, data.test):
        split.texts.setflags(write=False)
        split.labels.setflags(write=False)
    return data


def _load(path: Path, val_split: float, seed: int) -> Data:
    train_all = _read_split(path / "train.parquet")
    test = _read_split(path / "test.parquet")
    counts = train_all.counts()
    if min(counts["pos"], counts["neg"]) < 2:
        raise DatasetError(
            f"data set {path} has {counts['pos']} positive and {counts['neg']} negative training "
            "reviews: at least 2 of each are needed; prepare it from more reviews"
        )
    n_val = round(len(train_all) * val_split)
    if n_val < 2 or len(train_all) - n_val < 2:
        raise not_allowed(
            "val_split",
            val_split,
            f"a fraction that leaves at least 2 reviews in each part of {len(train_all)} rows",
        )
    train_idx, val_idx = stratified_split(train_all.labels, val_split, seed)
    try:
        manifest = prep.read_manifest(path)
    except (OSError, ValueError) as exc:  # unreadable, cut short, not JSON
        raise _unreadable(path / prep.MANIFEST, exc) from None
    return Data(
        Split(train_all.texts[train_idx], train_all.labels[train_idx]),
        Split(train_all.texts[val_idx], train_all.labels[val_idx]),
        test,
        manifest,
    )


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, validation): each label split in the same proportion.

    Deterministic for a seed and independent of row order within a label. Written with
    numpy rather than scikit-learn, whose import alone costs seconds per notebook run.
    """
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        n_val = int(round(len(members) * val_fraction))
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    # Sorted, so that the training order does not depend on the split's internals.
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))
