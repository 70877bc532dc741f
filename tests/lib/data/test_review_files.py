"""Reviews to score read in chunks: .txt folders, csv/parquet/jsonl tables, skips, bad input."""

from __future__ import annotations

import json
import os
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


@pytest.mark.parametrize("extension", [".parquet", ".csv", ".jsonl"])
def test_tables_read_every_row_in_order_with_columns(tmp_path, extension):
    table = _table(23)
    path = _write(table, tmp_path / f"reviews{extension}")
    chunks = _read(path, text_column="review", id_column="key", label_column="y", chunk_size=4)
    assert [len(c) for c in chunks] == [4, 4, 4, 4, 4, 3]
    assert _ids(chunks) == table.column("key").to_pylist()
    assert [t for c in chunks for t in c.texts] == table.column("review").to_pylist()
    assert [v for c in chunks for v in c.labels] == table.column("y").to_pylist()
    unlabelled = _read(path, text_column="review")
    assert _ids(unlabelled) == list(range(23)) and unlabelled[0].labels is None


@pytest.mark.parametrize("extension", [".parquet", ".csv", ".jsonl"])
def test_a_file_much_larger_than_a_chunk_comes_in_chunks_of_at_most_its_size(tmp_path, extension):
    path = _write(_table(5000, seed=1), tmp_path / f"big{extension}")
    with open_reviews(path, text_column="review", chunk_size=64) as source:
        sizes = [len(c) for c in source.chunks()]
    assert max(sizes) <= 64 and sum(sizes) == 5000 and len(sizes) >= 5000 // 64


def test_a_folder_of_parts_counts_rows_over_the_parts(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    _write(_table(5, seed=1), parts / "part-0.parquet")
    _write(_table(4, seed=2), parts / "part-1.parquet")
    (parts / "_SUCCESS").write_text("")
    with open_reviews(parts, text_column="review", chunk_size=3) as source:
        assert source.total == 9
        chunks = list(source.chunks())
    assert _ids(chunks) == list(range(9))
    assert [len(c) for c in chunks] == [3, 3, 3]


def test_null_empty_and_non_utf8_cells_are_skipped(tmp_path):
    table = pa.table({"text": ["good", "", None, "  ", "fine"], "y": [1, 0, 1, 0, 1]})
    chunks = _read(_write(table, tmp_path / "t.parquet"), label_column="y")
    assert _ids(chunks) == [0, 4] and chunks[0].labels == [1, 1]
    assert _skipped(chunks) == {"empty": [1, 3], "null": [2]}
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(
        b'{"text": "ok", "y": 1}\n{"text": null, "y": 0}\n{"text": "caf\xe9", "y": 1}\n'
    )
    chunks = _read(jsonl, label_column="y")
    assert _ids(chunks) == [0] and _skipped(chunks) == {"null": [1], "not_utf8": [2]}
    csv = tmp_path / "t.csv"
    csv.write_bytes(b'text,y\n"ok",1\n"caf\xe9",0\n"",1\n')
    chunks = _read(csv, label_column="y")
    assert _ids(chunks) == [0] and _skipped(chunks) == {"not_utf8": [1], "empty": [2]}


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


def test_a_parquet_file_is_not_held_whole_while_read(tmp_path):
    # 20 row groups of 1 MB of incompressible text; read in chunks of 500 rows, Arrow's
    # buffers hold about a row group at a time, not the file (pre_buffer would keep it all).
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())])) as writer:
        for _ in range(20):
            texts = [os.urandom(250).hex() for _ in range(2000)]
            writer.write_table(pa.table({"text": texts}))
    most = 0
    with open_reviews(path, chunk_size=500) as source:
        for chunk in source.chunks():
            assert len(chunk) <= 500
            most = max(most, pa.total_allocated_bytes())
    assert most < 8 << 20, f"{most >> 20} MiB of Arrow buffers for a 20 MB file"
