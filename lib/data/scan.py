"""Every review file of some raw dirs, listed, read, fingerprinted and cleaned in one pass.

The work overlaps on all cores: a pool of threads first lists the folders; this thread takes
the listings in order, drops duplicate reviews, and reads and hashes the files in chunks of
``READ_CHUNK``, which the pool cleans as soon as they are read. Arrow's kernels, hashlib and
the reads' system calls all let go of the GIL.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.data import arrow_buffers, cleaning, raw

# Files read per cleaning task: enough that the regexes' compile time (4 ms a call, for the
# Unicode classes) stays small, few enough that cleaning starts soon after reading does.
READ_CHUNK = 4096


@dataclass
class Scan:
    """The review files kept (first raw dir wins a duplicate), their cleaned texts, and what
    was left out. Indices are positions in ``files``."""

    files: list[raw.ReviewFile] = field(default_factory=list)
    texts: pa.ChunkedArray | None = None
    fingerprint: str = ""  # sha256 of every kept file's name and content, in order
    per_dir_files: list[int] = field(default_factory=list)
    # Each raw dir lists its files split by split: the (start, stop) rows of each split.
    split_ranges: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: {split: [] for split in raw.SPLITS}
    )
    bad_names: list[str] = field(default_factory=list)
    bad_ratings: list[str] = field(default_factory=list)
    missing_folders: list[str] = field(default_factory=list)
    # Entries named like reviews that are not regular files inside the raw dirs, by reason
    # (raw.SPECIAL_REASONS): never read.
    special: dict[str, list[str]] = field(
        default_factory=lambda: {reason: [] for reason in raw.SPECIAL_REASONS}
    )
    duplicates: list[str] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)  # not UTF-8: decoded with replacement
    empty: list[int] = field(default_factory=list)  # empty or whitespace only
    empty_after: list[int] = field(default_factory=list)  # nothing left after cleaning

    def _keep(self, listing: raw.Listing, seen: set[tuple[str, int, int]]) -> None:
        self.bad_names += listing.bad_names
        self.bad_ratings += listing.bad_ratings
        self.missing_folders += listing.missing_folders
        for reason, paths in listing.special.items():
            self.special[reason] += paths
        start = len(self.files)
        for f in listing.files:
            if f.key in seen:
                self.duplicates.append(f.path)
                continue
            seen.add(f.key)
            self.files.append(f)
        if len(self.files) > start:
            split = listing.files[0].split
            ranges = self.split_ranges[split]
            if ranges and ranges[-1][1] == start:  # the same raw dir's other label
                ranges[-1] = (ranges[-1][0], len(self.files))
            else:
                ranges.append((start, len(self.files)))


@dataclass
class _Cleaned:
    texts: pa.LargeStringArray
    invalid: list[int]  # indices within the chunk
    empty: list[int]
    empty_after: list[int]


def _clean_chunk(contents: list[bytes]) -> _Cleaned:
    contents, invalid = raw.decode_utf8(contents)
    texts = cleaning.clean(arrow_buffers.large_strings(contents))
    blank = np.flatnonzero(arrow_buffers.byte_lengths(texts) == 0).tolist()
    empty, empty_after = [], []
    if blank:
        # Empty, or Unicode whitespace only (utf8_is_space is false for "").
        blank_texts = arrow_buffers.large_strings([contents[i] for i in blank])
        spaces = pc.utf8_is_space(blank_texts).to_pylist()
        for i, space in zip(blank, spaces, strict=True):
            (empty if space or not contents[i] else empty_after).append(i)
    return _Cleaned(texts, invalid, empty, empty_after)


def _hashed_stream(chunk: list[raw.ReviewFile], contents: list[bytes]) -> bytes:
    # The same bytes as one sha256 update per file, name then content, in one update.
    stream = []
    for f, data in zip(chunk, contents, strict=True):
        stream.append(f"{f.source}/{f.split}/{f.label}/{f.id}_{f.rating}:{len(data)}\0".encode())
        stream.append(data)
    return b"".join(stream)


def scan(raw_dirs: list[Path], threads: int | None = None) -> Scan:
    """List, read, fingerprint and clean the review files of ``raw_dirs`` (checked folders)."""
    result = Scan()
    seen: set[tuple[str, int, int]] = set()
    fingerprint = hashlib.sha256()
    roots = tuple(os.path.realpath(d) for d in raw_dirs)
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        listings = [
            (source, pool.submit(raw.list_folder, raw_dir, split, label_name, source, roots))
            for source, raw_dir in enumerate(raw_dirs)
            for split in raw.SPLITS
            for label_name in raw.LABELS
        ]
        cleaned = []
        read = 0
        for n, (source, listing) in enumerate(listings):
            before = len(result.files)
            result._keep(listing.result(), seen)
            if source == len(result.per_dir_files):
                result.per_dir_files.append(0)
            result.per_dir_files[source] += len(result.files) - before
            # Whole chunks as soon as they are listed; the last, partial one at the end.
            listed_all = n == len(listings) - 1
            while len(result.files) - read >= READ_CHUNK or (
                listed_all and read < len(result.files)
            ):
                chunk = result.files[read : read + READ_CHUNK]
                contents = raw.read_files([f.path for f in chunk])
                cleaned.append(pool.submit(_clean_chunk, contents))
                fingerprint.update(_hashed_stream(chunk, contents))
                read += len(chunk)
        chunks = [future.result() for future in cleaned]
    for start, chunk in zip(range(0, read, READ_CHUNK), chunks, strict=True):
        result.invalid += [start + i for i in chunk.invalid]
        result.empty += [start + i for i in chunk.empty]
        result.empty_after += [start + i for i in chunk.empty_after]
    result.texts = pa.chunked_array([c.texts for c in chunks], type=pa.large_string())
    result.fingerprint = "sha256:" + fingerprint.hexdigest()
    return result
