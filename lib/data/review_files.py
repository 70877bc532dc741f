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
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from lib.core import gcs
from lib.core.errors import DatasetError, ParameterError
from lib.data import raw, review_tables
from lib.data.review_tables import TABLE_EXTENSIONS

TEXT_EXTENSION = ".txt"
INPUT_EXTENSIONS: tuple[str, ...] = (TEXT_EXTENSION, *TABLE_EXTENSIONS)
EMPTY, NOT_UTF8, NULL = "empty", "not_utf8", "null"
SKIP_REASONS: tuple[str, ...] = (EMPTY, NOT_UTF8, NULL)
DEFAULT_CHUNK_SIZE = 4096


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


def listing(folder: Path) -> list[str]:
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

    @property
    def columns(self) -> review_tables.TableColumns:
        """The table columns to read."""
        return review_tables.TableColumns(self.text_column, self.id_column, self.label_column)

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
        # Regrouped as Python lists, not Arrow tables: batches whose types were inferred
        # apart (a column all null in one JSON block) need not share a schema.
        row = 0
        ids: list = []
        texts: list = []
        labels: list = []
        for name in self.files:
            batches = review_tables.read_batches(
                self.root / name, self.extension, self.columns, self.chunk_size
            )
            for batch in batches:
                n = batch.num_rows
                texts += _as_bytes(batch.column(self.text_column)).to_pylist()
                if self.id_column is not None:
                    ids += batch.column(self.id_column).to_pylist()
                else:
                    ids += range(row, row + n)
                if self.label_column is not None:
                    labels += batch.column(self.label_column).to_pylist()
                row += n
                while len(texts) >= self.chunk_size:
                    yield self._table_chunk(ids, texts, labels, self.chunk_size)
        if texts:
            yield self._table_chunk(ids, texts, labels, len(texts))

    def _table_chunk(self, ids: list, texts: list, labels: list, n: int) -> ReviewChunk:
        """The chunk of the first ``n`` pending rows, taken out of the lists."""
        chunk = _chunk(ids[:n], texts[:n], labels[:n] if self.label_column is not None else None)
        del ids[:n], texts[:n], labels[:n]
        if chunk.labels is not None:
            chunk.labels = _labels(chunk.labels, chunk.ids, str(self.label_column))
        return chunk


def _as_bytes(column: pa.Array) -> pa.Array:
    # As bytes, decoded one by one in _chunk: a string column need not be valid UTF-8
    # (pyarrow's JSON reader does not check), and one review that is not is skipped alone.
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.large_binary())
    return column


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
        files = listing(local)
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
            paths = [source.root / name for name in files]
            source.total = review_tables.parquet_rows(paths, source.columns)
    return source


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
