"""Tables of reviews read in Arrow record batches: ``.parquet`` by row groups, ``.csv`` by
pyarrow's streaming reader, ``.jsonl`` in blocks of lines. :mod:`lib.data.review_files`
regroups the batches into chunks of reviews.

The text column comes as bytes where the format allows (CSV) so that a text that is not
UTF-8 is skipped alone instead of failing its block.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lib.core.errors import DatasetError, ParameterError

TABLE_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet", ".jsonl")
_CSV_BLOCK_BYTES = 4 << 20  # pyarrow's CSV blocks; rows are regrouped into chunks
_PARQUET_BUFFER_BYTES = 1 << 20  # read buffer of a Parquet column chunk's pages


@dataclass(frozen=True)
class TableColumns:
    """The columns to read: the text, and the id and the label when named."""

    text: str = "text"
    id: str | None = None
    label: str | None = None

    def names(self) -> list[str]:
        """The columns named, each once, text first."""
        return list(dict.fromkeys(c for c in (self.text, self.id, self.label) if c is not None))

    def check(self, path: Path, names: list[str]) -> None:
        """ParameterError naming the table's columns unless it has every column named."""
        for parameter, column in (
            ("text_column", self.text),
            ("id_column", self.id),
            ("label_column", self.label),
        ):
            if column is not None and column not in names:
                raise ParameterError(
                    parameter,
                    f"{column!r} is not a column of {path.name}; its columns are "
                    f"{', '.join(map(repr, names)) or 'none'}: pass one of them",
                )


def read_batches(
    path: Path, extension: str, columns: TableColumns, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """The named ``columns`` of the table at ``path`` in batches of at most about
    ``batch_size`` rows (a CSV's come by blocks of bytes)."""
    readers = {".parquet": parquet_batches, ".csv": csv_batches, ".jsonl": jsonl_batches}
    return readers[extension](path, columns, batch_size)


def parquet_rows(paths: list[Path], columns: TableColumns) -> int:
    """The rows of Parquet files, from their footers, checking their columns."""
    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        with pq.ParquetFile(path) as parquet:
            columns.check(path, parquet.schema_arrow.names)
            total += parquet.metadata.num_rows
    return total


def parquet_batches(path: Path, columns: TableColumns, batch_size: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    # pre_buffer would cache every row group read, the whole file by the end: memory grows
    # with the input (500,000 reviews: +400 MiB). Unbuffered, a column chunk is read whole:
    # a file written as one row group (pandas' default up to a million rows) would be held
    # entire; buffered, its pages are read as they are decoded.
    with pq.ParquetFile(path, pre_buffer=False, buffer_size=_PARQUET_BUFFER_BYTES) as parquet:
        columns.check(path, parquet.schema_arrow.names)
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns.names())


def csv_batches(path: Path, columns: TableColumns, batch_size: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    if path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.readline().decode("utf-8", errors="replace")
    columns.check(path, next(csv.reader([header]), []))
    # Binary: a text that is not UTF-8 is skipped by itself instead of failing its block.
    types = {columns.text: pa.large_binary()}
    if columns.id is not None and columns.id != columns.text:
        types[columns.id] = pa.string()
    convert = pcsv.ConvertOptions(
        include_columns=columns.names(), column_types=types, strings_can_be_null=False
    )
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        convert_options=convert,
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
    )
    yield from reader


def jsonl_batches(path: Path, columns: TableColumns, batch_size: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.json as pjson

    # pyarrow's JSON reader on each block of lines (four times Python's json); a block it
    # refuses (a line not UTF-8, or not JSON) is read line by line, which skips a line that
    # is not UTF-8 as such and names a line that is not JSON.
    checked = False
    with path.open("rb") as f:
        while lines := list(itertools.islice(f, batch_size)):
            try:
                table = pjson.read_json(pa.BufferReader(b"".join(lines)))
            except pa.ArrowInvalid:
                batch = _jsonl_lines(path, columns, lines)
            else:
                if not checked:
                    columns.check(path, table.schema.names)
                    checked = True
                table = table.select([c for c in columns.names() if c in table.schema.names])
                batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
            if batch is not None:
                yield _with_columns(batch, columns.names())


def _with_columns(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    """``batch`` with ``columns`` in order; one missing from a block's rows is all null."""
    arrays = [
        batch.column(c) if c in batch.schema.names else pa.nulls(batch.num_rows) for c in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def _jsonl_lines(path: Path, columns: TableColumns, lines: list[bytes]) -> pa.RecordBatch | None:
    names = columns.names()
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = record.get(columns.text) if isinstance(record, dict) else None
            text = text.encode() if isinstance(text, str) else text
        except UnicodeDecodeError:
            record = json.loads(line.decode("utf-8", errors="replace"))
            text = b"\xff"  # not UTF-8: skipped as such, with its id and label
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path.name} has a line that is not JSON ({exc.msg}); write one JSON "
                "object per line"
            ) from None
        if not isinstance(record, dict):
            raise DatasetError(
                f"{path.name} has a line that is not a JSON object; write one object "
                'per line, such as {"text": "..."}'
            )
        rows.append([text if c == columns.text else record.get(c) for c in names])
    if not rows:
        return None
    arrays = [
        pa.array(values, pa.large_binary() if c == columns.text else None)
        for c, values in zip(names, zip(*rows, strict=True), strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=names)
