"""Raw review folders -> one processed data set (train/test parquet + manifest), atomically.

``prepare`` combines any number of raw dirs in the aclImdb layout. When the same review
(split, label, id) appears in more than one raw dir, the first raw dir in ``raw_dirs``
wins; later copies are skipped and counted as ``duplicate_id``. Nothing is written until
every row is ready: the data set is built in a temporary folder beside ``processed_dir``
and renamed into place, so a failure leaves an earlier processed data set untouched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib.core import paths
from lib.core.errors import DatasetError, output_faults
from lib.data import arrow_buffers, cleaning, raw, scan

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMAT = "imdb-sentiment-processed"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COLUMNS = ("id", "rating", "label", "text", "source")
EXAMPLES = 5  # skipped files shown per reason


def _skip_record(items: Sequence[str]) -> dict[str, Any]:
    return {"count": len(items), "examples": list(items[:EXAMPLES])}


def _check_output(processed_dir: Path, raw_dirs: list[Path]) -> None:
    out = processed_dir.resolve()
    for raw_dir in raw_dirs:
        if out == raw_dir or out.is_relative_to(raw_dir):
            raise DatasetError(
                f"processed_dir {processed_dir} is inside raw dir {raw_dir}; the processed "
                "files would mix with the reviews. Choose a folder outside the raw data, "
                "e.g. data/processed"
            )
        if raw_dir.is_relative_to(out):
            raise DatasetError(
                f"raw dir {raw_dir} is inside processed_dir {processed_dir}; replacing "
                "processed_dir would delete the raw data. Choose another processed_dir"
            )
    if out.exists() and not out.is_dir():
        raise DatasetError(
            f"processed_dir {processed_dir} exists and is not a folder; choose a folder path, "
            "e.g. data/processed"
        )
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise DatasetError(
            f"processed_dir {processed_dir} exists, is not empty and is not a processed "
            "data set (no manifest.json); refusing to replace it. Choose an empty or new folder"
        )


def is_processed_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a processed data set written by ``prepare``."""
    path = Path(path)
    return all((path / name).is_file() for name in (MANIFEST, "train.parquet", "test.parquet"))


def read_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))


def _write_parquet(table: pa.Table, path: Path) -> None:
    # The file closed here, even when a write fails: left to pyarrow, a failed writer keeps
    # it open (and a full disk's space taken) until the garbage collector finds it.
    with pa.OSFile(str(path), "wb") as sink:
        pq.write_table(table, sink, compression="zstd")


def _write_atomically(processed_dir: Path, tables: dict[str, pa.Table], manifest: dict) -> None:
    # A read-only, full or forbidden processed_dir: one line naming it (OutputError).
    with output_faults("processed_dir", processed_dir):
        tmp = paths.new_temp_dir(processed_dir.parent, f".{processed_dir.name}.tmp-")
        try:
            with ThreadPoolExecutor(len(tables)) as pool:  # the writer lets go of the GIL
                written = [
                    pool.submit(_write_parquet, table, tmp / f"{split}.parquet")
                    for split, table in tables.items()
                ]
                for future in written:
                    future.result()
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            old = processed_dir.with_name(f".{processed_dir.name}.old-{os.getpid()}")
            if paths.replace_folder(tmp, processed_dir, old):
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def prepare(
    raw_dirs: Sequence[str | os.PathLike[str]],
    processed_dir: str | os.PathLike[str],
    threads: int | None = None,
) -> dict[str, Any]:
    """Read, clean and combine ``raw_dirs`` into ``processed_dir``; returns the manifest."""
    started = time.perf_counter()
    if not raw_dirs:
        raise DatasetError("raw_dirs is empty; give at least one folder in the aclImdb layout")
    resolved = [raw.check_raw_dir(paths.resolve(d)) for d in raw_dirs]
    if len(set(resolved)) != len(resolved):
        raise DatasetError(
            f"raw_dirs lists the same folder twice: {[str(d) for d in resolved]}; "
            "list each folder once"
        )
    processed = paths.resolve(processed_dir)
    _check_output(processed, resolved)

    found = scan.scan(resolved, threads)
    files = found.files
    for what, items in (
        ("file names that do not parse", found.bad_names),
        ("ratings outside 1-10", found.bad_ratings),
        ("duplicate review ids", found.duplicates),
        ("a link leading outside the raw dirs", found.special[raw.LINK_OUTSIDE]),
        ("a broken link", found.special[raw.BROKEN_LINK]),
        ("no regular file (a FIFO, device, folder)", found.special[raw.NOT_REGULAR]),
    ):
        if items:
            log.warning("skipping %d files with %s, e.g. %s", len(items), what, items[:3])
    if found.invalid:
        log.warning(
            "%d files are not valid UTF-8; decoded with replacement characters, e.g. %s",
            len(found.invalid),
            [files[i].path for i in found.invalid[:3]],
        )
    missing = found.missing_folders

    sources = [str(d) for d in resolved]

    def numbers(name: str, dtype: type) -> np.ndarray:
        return np.fromiter((getattr(f, name) for f in files), dtype, len(files))

    source, label = numbers("source", np.int32), numbers("label", np.int8)
    columns = {
        "id": arrow_buffers.from_numpy(numbers("id", np.int64)),
        "rating": arrow_buffers.from_numpy(numbers("rating", np.int8)),
        "label": arrow_buffers.from_numpy(label),
        "text": found.texts,
        "source": pa.DictionaryArray.from_arrays(
            arrow_buffers.from_numpy(source), arrow_buffers.strings(sources)
        ),
    }
    table = pa.table({name: columns[name] for name in COLUMNS})
    keep = np.ones(len(files), dtype=bool)
    keep[found.empty + found.empty_after] = False
    tables, rows = {}, {}
    for split in raw.SPLITS:
        ranges = found.split_ranges[split]
        part = pa.concat_tables([table.slice(a, b - a) for a, b in ranges] or [table.slice(0, 0)])
        part_keep = np.concatenate([keep[a:b] for a, b in ranges] or [keep[:0]])
        if not part_keep.all():
            part = part.filter(arrow_buffers.mask(part_keep))
        if part.num_rows == 0:
            raise DatasetError(
                f"nothing left to write for the {split} split of {sources}: no usable "
                f"{split} reviews (missing folders: {missing or 'none'}); no data set was written. "
                f"Give raw_dirs with reviews in <dir>/{split}/pos and <dir>/{split}/neg"
            )
        tables[split] = part
        labels = np.concatenate([label[a:b] for a, b in ranges])[part_keep]
        rows[split] = {
            "total": part.num_rows,
            "pos": int((labels == 1).sum()),
            "neg": int((labels == 0).sum()),
        }
    source_rows = np.bincount(source[keep], minlength=len(sources))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "cleaning_version": cleaning.CLEANING_VERSION,
        "raw_dirs": [
            {"path": s, "files": int(n), "rows": int(r)}
            for s, n, r in zip(sources, found.per_dir_files, source_rows, strict=True)
        ],
        "rows": rows,
        "fingerprint": found.fingerprint,
        "skipped": {
            "bad_name": _skip_record(found.bad_names),
            "rating_out_of_range": _skip_record(found.bad_ratings),
            "duplicate_id": _skip_record(found.duplicates),
            **{reason: _skip_record(items) for reason, items in found.special.items()},
            "empty": _skip_record([files[i].path for i in found.empty]),
            "empty_after_cleaning": _skip_record([files[i].path for i in found.empty_after]),
        },
        "non_utf8_decoded_with_replacement": _skip_record([files[i].path for i in found.invalid]),
        "missing_folders": missing,
        "seconds": None,
    }
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    _write_atomically(processed, tables, manifest)
    log.info(
        "processed data set written to %s: %s",
        processed,
        rows,
        extra={"fingerprint": manifest["fingerprint"]},
    )
    return manifest


def before_and_after(processed_dir: str | os.PathLike[str], n: int = 3) -> pd.DataFrame:
    """``n`` training reviews per label: the raw file's text beside the cleaned text."""
    import pandas as pd

    processed = paths.resolve(processed_dir)
    table = pq.read_table(processed / "train.parquet")
    rows = []
    for label, label_name in ((1, "pos"), (0, "neg")):
        part = table.filter(pc.equal(table["label"], label)).slice(0, n).to_pylist()
        for row in part:
            path = Path(row["source"]) / "train" / label_name / f"{row['id']}_{row['rating']}.txt"
            try:
                raw_text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:  # the raw data may have moved since prep ran
                raw_text = f"<raw file unavailable: {exc}>"
            rows.append(
                {"file": str(path), "label": label, "raw": raw_text, "cleaned": row["text"]}
            )
    return pd.DataFrame(rows)


def rows_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Reviews per split (rows) and label (columns ``pos``, ``neg``, ``total``)."""
    import pandas as pd

    return pd.DataFrame(manifest["rows"]).T[["pos", "neg", "total"]]


def skipped_table(manifest: dict[str, Any], examples: int = 3) -> pd.DataFrame:
    """Per reason, how many files were skipped and up to ``examples`` of them; a last row
    counts the files that were kept, decoded with replacement characters."""
    import pandas as pd

    records = {
        **manifest["skipped"],
        "non_utf8 (kept, decoded with replacement)": manifest["non_utf8_decoded_with_replacement"],
    }
    return pd.DataFrame(
        [{"count": r["count"], "examples": r["examples"][:examples]} for r in records.values()],
        index=list(records),
    )
