"""Tables of reviews (csv, parquet, jsonl, folders of parts) read in bounded chunks."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.data.review_files import open_reviews
from lib.data.review_tables import TableColumns, read_batches
from tests.lib.data.test_review_files import _ids, _read, _skipped, _table, _write


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


def test_a_parquet_file_of_one_row_group_is_read_by_pages(tmp_path):
    # One row group of 20 MB (pandas and pyarrow write up to a million rows as one): read
    # unbuffered, its column chunk would be held whole (22 MiB of Arrow buffers).
    path = tmp_path / "one-group.parquet"
    texts = [os.urandom(250).hex() for _ in range(40000)]
    pq.write_table(pa.table({"text": texts}), path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    most = rows = 0
    with open_reviews(path, chunk_size=500) as source:
        for chunk in source.chunks():
            rows += len(chunk)
            most = max(most, pa.total_allocated_bytes())
    assert rows == 40000
    assert most < 8 << 20, f"{most >> 20} MiB of Arrow buffers for a row group of 20 MB"


def test_jsonl_blocks_of_differing_types_and_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [b'{"text": "a", "key": null}\n', b'{"text": "b", "key": null}\n']
    lines += [b'{"text": "c", "key": 7}\n', b'{"text": "d\xff", "key": 8}\n']
    path.write_bytes(b"".join(lines))
    batches = list(read_batches(path, ".jsonl", TableColumns("text", "key"), 2))
    assert [b.num_rows for b in batches] == [2, 2]
    chunks = _read(path, id_column="key", chunk_size=3)
    assert _ids(chunks) == [None, None, 7] and _skipped(chunks) == {"not_utf8": [8]}


def test_table_columns_name_each_column_once_and_check_them(tmp_path):
    columns = TableColumns("text", "text", "y")
    assert columns.names() == ["text", "y"]
    with pytest.raises(Exception, match="label_column: 'y' is not a column of t.csv"):
        columns.check(tmp_path / "t.csv", ["text"])
