"""Reviews to score, read in chunks of bounded size: a folder of ``.txt`` files, or a table.

Inputs (:func:`open_reviews`):

- a folder of ``.txt`` reviews, searched recursively; a review's id is its path relative to
  the folder, and the files are read in the sorted order of those ids. When every file sits
  in a ``pos/`` or ``neg/`` folder (the aclImdb layout) the reviews carry labels 1 and 0.
- one ``.csv``, ``.parquet`` or ``.jsonl`` file, or a folder of such parts (one extension;
  names starting with ``_`` or ``.`` are left out, as Spark's ``_SUCCESS``), with a text
  column, an optional id column (else the row number from 0, counted over all parts) and an
  optional label column (0 or 1).
- either on ``gs://``: the input is first downloaded to a temporary folder (disk, not
  memory), which is removed when the ``with`` block ends.

A review that is null, not UTF-8, or empty (or whitespace only, as prep's ``empty``) is
skipped and counted by reason (:data:`SKIP_REASONS`), never scored.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from lib.core import gcs
from lib.core.errors import DatasetError, ParameterError
from lib.data import raw

TEXT_EXTENSION = ".txt"
TABLE_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet", ".jsonl")
INPUT_EXTENSIONS: tuple[str, ...] = (TEXT_EXTENSION, *TABLE_EXTENSIONS)
EMPTY, NOT_UTF8, NULL = "empty", "not_utf8", "null"
SKIP_REASONS: tuple[str, ...] = (EMPTY, NOT_UTF8, NULL)
DEFAULT_CHUNK_SIZE = 4096
_CSV_BLOCK_BYTES = 4 << 20  # pyarrow's CSV blocks; rows are regrouped into chunks


@dataclass
class ReviewChunk:
    """Up to ``chunk_size`` reviews to score, in input order, and those skipped among them.

    ``labels`` is None when the input carries no labels; ``skipped`` maps a reason of
    :data:`SKIP_REASONS` to the ids skipped for it in this chunk.
    """

    ids: list[str | int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[int] | None = None
    skipped: dict[str, list[str | int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def _extensions_line() -> str:
    return ", ".join(INPUT_EXTENSIONS)


def _listing(folder: Path) -> list[str]:
    """Every regular file under ``folder`` (no links, nothing hidden), as sorted relative
    paths: strings, not Path objects, which would take ten times the memory on a million."""
    found = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(folder / relative) as entries:
            for entry in entries:
                if entry.name.startswith((".", "_")):
                    continue
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif entry.is_file(follow_symlinks=False):
                    found.append(name)
    found.sort()
    return found


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


@dataclass
class ReviewSource:
    """A checked input: its files (paths relative to ``root``), its ``extension`` (``.txt``
    for a folder of reviews), whether it carries labels, and its number of rows when known
    up front (else None)."""

    path: str
    files: list[str]
    root: Path
    extension: str
    text_column: str = "text"
    id_column: str | None = None
    label_column: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    labelled: bool = False
    total: int | None = None

    def chunks(self) -> Iterator[ReviewChunk]:
        """The reviews in chunks of at most ``chunk_size`` reviews, read as they are needed.

        Raises DatasetError at the end when the input held no rows at all."""
        rows = 0
        batches = self._folder_batches() if self.extension == TEXT_EXTENSION else self._table()
        for chunk in batches:
            rows += len(chunk) + sum(len(ids) for ids in chunk.skipped.values())
            yield chunk
        if rows == 0:
            raise DatasetError(f"input_path {self.path} holds no reviews: give it some rows")

    def _folder_batches(self) -> Iterator[ReviewChunk]:
        for start in range(0, len(self.files), self.chunk_size):
            ids = self.files[start : start + self.chunk_size]
            contents = raw.read_files([f"{self.root}/{name}" for name in ids])
            labels = [raw.LABELS[_folder_name(name)] for name in ids] if self.labelled else None
            yield _chunk(ids, contents, labels)

    def _table(self) -> Iterator[ReviewChunk]:
        readers = {".parquet": _parquet_batches, ".csv": _csv_batches, ".jsonl": _jsonl_batches}
        row = 0
        pending: list[pa.RecordBatch] = []
        size = 0
        for name in self.files:
            for batch in readers[self.extension](self.root / name, self):
                pending.append(batch)
                size += batch.num_rows
                while size >= self.chunk_size:
                    table = pa.Table.from_batches(pending).combine_chunks()
                    head, rest = table.slice(0, self.chunk_size), table.slice(self.chunk_size)
                    yield self._table_chunk(head, row)
                    row += head.num_rows
                    pending, size = rest.to_batches(), rest.num_rows
        if size:
            yield self._table_chunk(pa.Table.from_batches(pending), row)

    def _table_chunk(self, table: pa.Table, first_row: int) -> ReviewChunk:
        if self.id_column is not None:
            ids = table.column(self.id_column).to_pylist()
        else:
            ids = list(range(first_row, first_row + table.num_rows))
        labels = None
        if self.label_column is not None:
            labels = table.column(self.label_column).to_pylist()
        chunk = _chunk(ids, table.column(self.text_column).to_pylist(), labels)
        if chunk.labels is not None:
            chunk.labels = _labels(chunk.labels, chunk.ids, str(self.label_column))
        return chunk


def _chunk(ids: list, values: list, labels: list | None) -> ReviewChunk:
    """The chunk of ``values`` (str, bytes or None), skipping null, non-UTF-8 and empty ones."""
    chunk = ReviewChunk(labels=[] if labels is not None else None)
    for i, value in enumerate(values):
        reason = None
        if value is None:
            reason = NULL
        elif isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                reason = NOT_UTF8
        elif not isinstance(value, str):
            value = str(value)  # a number in a CSV's text column
        if reason is None and not value.strip():
            reason = EMPTY
        if reason is not None:
            chunk.skipped.setdefault(reason, []).append(ids[i])
            continue
        chunk.ids.append(ids[i])
        chunk.texts.append(value)
        if labels is not None and chunk.labels is not None:
            chunk.labels.append(labels[i])
    return chunk


# 0/1 as numbers, booleans or strings (True == 1 and 1.0 == 1 as keys).
_LABEL_VALUES: dict[object, int] = {0: 0, 1: 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1}


def _labels(values: list, ids: list, column: str) -> list[int]:
    out = []
    for value, review_id in zip(values, ids, strict=True):
        label = _LABEL_VALUES.get(value.strip() if isinstance(value, str) else value)
        if label is not None:
            out.append(label)
        else:
            raise DatasetError(
                f"label_column {column!r} holds {value!r} for review {review_id!r}: labels must "
                "be 0 (negative) or 1 (positive); fix the column or leave label_column out"
            )
    return out


def _columns(source: ReviewSource) -> list[str]:
    wanted = [source.text_column, source.id_column, source.label_column]
    return list(dict.fromkeys(c for c in wanted if c is not None))


def _check_columns(source: ReviewSource, path: Path, names: list[str]) -> None:
    for parameter in ("text_column", "id_column", "label_column"):
        column = getattr(source, parameter)
        if column is not None and column not in names:
            raise ParameterError(
                parameter,
                f"{column!r} is not a column of {path.name}; its columns are "
                f"{', '.join(map(repr, names)) or 'none'}: pass one of them",
            )


def _parquet_batches(path: Path, source: ReviewSource) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    # pre_buffer would cache every row group read, the whole file by the end: memory grows
    # with the input (500,000 reviews: +400 MiB).
    with pq.ParquetFile(path, pre_buffer=False) as parquet:
        _check_columns(source, path, parquet.schema_arrow.names)
        yield from parquet.iter_batches(batch_size=source.chunk_size, columns=_columns(source))


def _csv_batches(path: Path, source: ReviewSource) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    if path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.readline().decode("utf-8", errors="replace")
    _check_columns(source, path, next(csv.reader([header]), []))
    # Binary: a text that is not UTF-8 is skipped by itself instead of failing its block.
    types = {source.text_column: pa.large_binary()}
    if source.id_column is not None and source.id_column != source.text_column:
        types[source.id_column] = pa.string()
    convert = pcsv.ConvertOptions(
        include_columns=_columns(source), column_types=types, strings_can_be_null=False
    )
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        convert_options=convert,
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
    )
    yield from reader


def _jsonl_batches(path: Path, source: ReviewSource) -> Iterator[pa.RecordBatch]:
    # Line by line: a line that is not UTF-8 (which fails a whole block in pyarrow's JSON
    # reader) becomes a review skipped as not_utf8.
    columns = _columns(source)
    checked = False
    with path.open("rb") as f:
        while lines := list(itertools.islice(f, source.chunk_size)):
            rows = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text = record.get(source.text_column) if isinstance(record, dict) else None
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
                if not checked:
                    _check_columns(source, path, list(record))
                    checked = True
                rows.append([text if c == source.text_column else record.get(c) for c in columns])
            if rows:
                arrays = [
                    pa.array(values, pa.large_binary() if c == source.text_column else None)
                    for c, values in zip(columns, zip(*rows, strict=True), strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, names=columns)


def _folder_name(name: str) -> str:
    """The name of the folder holding the file ``name`` (a relative path), else ""."""
    return name.rpartition("/")[0].rpartition("/")[2]


def _kind(path: str, files: list[str]) -> str:
    extensions = sorted({_extension(name) for name in files} & set(INPUT_EXTENSIONS))
    if not extensions:
        raise DatasetError(
            f"input_path {path} holds no reviews: expected files ending in {_extensions_line()}"
        )
    if len(extensions) > 1:
        raise ParameterError(
            "input_path",
            f"{path} mixes {', '.join(extensions)} files: give a folder of one kind",
        )
    return extensions[0]


def _check(source_path: str, local: Path, **options) -> ReviewSource:
    if not local.exists():
        raise ParameterError(
            "input_path",
            f"{source_path} does not exist: pass a folder of {TEXT_EXTENSION} reviews or a "
            f"{', '.join(TABLE_EXTENSIONS)} file",
        )
    if local.is_dir():
        files = _listing(local)
        extension = _kind(source_path, files)
        files = [name for name in files if _extension(name) == extension]
        root = local
    else:
        extension = local.suffix.lower()
        if extension not in TABLE_EXTENSIONS:
            raise ParameterError(
                "input_path",
                f"{source_path} has the extension {extension or '(none)'!r}, not one accepted: "
                f"{', '.join(TABLE_EXTENSIONS)} (or a folder of {TEXT_EXTENSION} reviews)",
            )
        if local.stat().st_size == 0:
            raise DatasetError(f"input_path {source_path} is empty: give it some reviews")
        files, root = [local.name], local.parent
    source = ReviewSource(source_path, files, root, extension, **options)
    if extension == TEXT_EXTENSION:
        if options.get("label_column") is not None:
            raise ParameterError(
                "label_column",
                "a folder of .txt reviews has no columns: its labels come from pos/ and neg/ "
                "folders; leave label_column out",
            )
        source.labelled = all(_folder_name(name) in raw.LABELS for name in files)
        source.total = len(files)
    else:
        source.labelled = source.label_column is not None
        if extension == ".parquet":
            source.total = _parquet_rows(source)
    return source


def _parquet_rows(source: ReviewSource) -> int:
    import pyarrow.parquet as pq

    total = 0
    for name in source.files:
        path = source.root / name
        with pq.ParquetFile(path) as parquet:
            _check_columns(source, path, parquet.schema_arrow.names)
            total += parquet.metadata.num_rows
    return total


@contextlib.contextmanager
def open_reviews(
    input_path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[ReviewSource]:
    """The checked input at ``input_path`` (local or ``gs://``), to read with
    :meth:`ReviewSource.chunks` inside the block.

    Raises ParameterError or DatasetError (one line) when the input does not exist, is
    empty, has an extension not accepted, or lacks a column named."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ParameterError("chunk_size", f"{chunk_size!r} is not a positive whole number")
    options = dict(
        text_column=text_column,
        id_column=id_column,
        label_column=label_column,
        chunk_size=chunk_size,
    )
    path = os.fspath(input_path)
    if not gcs.is_gcs_uri(path):
        yield _check(path, Path(path), **options)
        return
    with tempfile.TemporaryDirectory(prefix="reviews-") as tmp:
        bucket, prefix = gcs.split_gcs_uri(path)
        name = Path(prefix.rstrip("/")).name or bucket
        local = Path(tmp, name)
        gcs.download(path, local)  # StorageError "nothing at ..." when it does not exist
        yield _check(path, local, **options)
