"""Reviews to score read in chunks: .txt folders, csv/parquet/jsonl tables, skips, bad input."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from lib.core.errors import DatasetError, ParameterError, UserError
from lib.data.review_files import SKIP_REASONS, ReviewChunk, open_reviews
from tests.support.datagen import make_raw_dir, review_text, write_review


def _read(path, **options) -> list[ReviewChunk]:
    with open_reviews(path, **options) as source:
        return list(source.chunks())


def _ids(chunks: list[ReviewChunk]) -> list:
    return [i for c in chunks for i in c.ids]


def _skipped(chunks: list[ReviewChunk]) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in chunks:
        for reason, ids in c.skipped.items():
            out.setdefault(reason, []).extend(ids)
    return out


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return pa.table(
        {
            "review": [review_text(label, rng, words=8) for label in labels],
            "key": [f"r{i}" for i in range(n)],
            "y": labels,
        }
    )


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=7)
    elif path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    return path


def test_aclimdb_folder_is_labelled_sorted_and_chunked(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=6)
    chunks = _read(root / "test", chunk_size=5)
    ids = _ids(chunks)
    assert ids == sorted(ids) and len(ids) == 12
    assert ids[0] == "neg/0_" + ids[0].split("_")[1]
    assert [len(c) for c in chunks] == [5, 5, 2]
    labels = [label for c in chunks for label in c.labels]
    assert labels == [0 if i.startswith("neg/") else 1 for i in ids]
    texts = [t for c in chunks for t in c.texts]
    assert texts[0] == (root / "test" / ids[0]).read_text()


def test_nested_folder_gives_relative_ids_and_a_flat_one_no_labels(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=2)
    with open_reviews(root) as source:
        assert source.labelled and source.total == 8
        ids = _ids(list(source.chunks()))
    assert ids[0].startswith("test/neg/") and ids[-1].startswith("train/pos/")
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("b.txt", "a.txt", "c.md", ".hidden.txt"):
        (flat / name).write_text(f"review {name}")
    (flat / "link.txt").symlink_to(flat / "a.txt")  # never read through a link, as prep
    with open_reviews(flat) as source:
        assert not source.labelled
        chunks = list(source.chunks())
    assert _ids(chunks) == ["a.txt", "b.txt"] and chunks[0].labels is None


def test_bad_reviews_are_skipped_by_reason(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=2)
    write_review(root, "test", 1, 50, 9, "")
    write_review(root, "test", 1, 51, 9, " \u2003\n")
    write_review(root, "test", 0, 52, 2, b"bad \xff byte")
    chunks = _read(root / "test", chunk_size=3)
    assert len(_ids(chunks)) == 4
    skipped = _skipped(chunks)
    assert sorted(skipped["empty"]) == ["pos/50_9.txt", "pos/51_9.txt"]
    assert skipped["not_utf8"] == ["neg/52_2.txt"]
    assert set(skipped) <= set(SKIP_REASONS)


def _one_line_error(path, cls, *needles, **options) -> str:
    with pytest.raises(cls) as info:
        _read(path, **options)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, UserError)
    for needle in needles:
        assert needle in message
    return message


def test_bad_inputs_raise_one_line(tmp_path):
    _one_line_error(tmp_path / "missing", ParameterError, "does not exist", ".parquet")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", DatasetError, "holds no reviews")
    (tmp_path / "zero.csv").write_bytes(b"")
    _one_line_error(tmp_path / "zero.csv", DatasetError, "is empty")
    (tmp_path / "header.csv").write_text("text,y\n")
    _one_line_error(tmp_path / "header.csv", DatasetError, "holds no reviews")
    (tmp_path / "r.xlsx").write_text("x")
    _one_line_error(tmp_path / "r.xlsx", ParameterError, "'.xlsx'", ".csv, .parquet, .jsonl")
    for extension in (".parquet", ".csv", ".jsonl"):
        path = _write(_table(3), tmp_path / f"cols{extension}")
        _one_line_error(path, ParameterError, "text_column", "'review', 'key', 'y'")
        _one_line_error(
            path, ParameterError, "label_column", text_column="review", label_column="stars"
        )
    labels = _write(pa.table({"text": ["a", "b"], "y": [1, 5]}), tmp_path / "labels.parquet")
    _one_line_error(labels, DatasetError, "label_column 'y' holds 5", label_column="y")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("a review")
    _write(_table(2), mixed / "b.csv")
    _one_line_error(mixed, ParameterError, ".csv, .txt")
    _one_line_error(tmp_path / "mixed", ParameterError, "chunk_size", chunk_size=0)
    (mixed / "b.csv").unlink()
    _one_line_error(mixed, ParameterError, "pos/ and neg/", label_column="y")


@pytest.mark.slow
@pytest.mark.services
def test_gcs_folder_and_table_are_downloaded_and_read(gcs_env, tmp_path):
    from lib.core import gcs
    from tests.support.services import BUCKET

    root = make_raw_dir(tmp_path / "raw", per_label=3)
    prefix = f"gs://{BUCKET}/review-files/{uuid.uuid4().hex}"
    gcs.upload(root / "test", prefix + "/reviews")
    with open_reviews(prefix + "/reviews", chunk_size=4) as source:
        assert source.labelled
        ids = _ids(list(source.chunks()))
    assert ids == sorted(p.relative_to(root / "test").as_posix() for p in root.rglob("test/*/*"))
    gcs.upload(_write(_table(9), tmp_path / "t.parquet"), prefix + "/t.parquet")
    assert len(_ids(_read(prefix + "/t.parquet", text_column="review"))) == 9
    with pytest.raises(UserError, match="nothing at"):
        _read(prefix + "/missing.parquet")
