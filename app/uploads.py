"""A file of reviews uploaded to the page, scored with the batch-scoring code
(:func:`lib.inference.batch.score_files`) into a table and its CSV.

Accepted: a ``.txt`` file (one review) or a ``.csv`` file with a text column, up to
:data:`MAX_UPLOAD_MB` MB. Anything else is an :class:`UploadError`, one line for the page.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from lib.core.errors import DatasetError, ParameterError, UserError, first_line
from lib.inference import batch
from lib.inference.batch import BatchResult

MAX_UPLOAD_MB = 2
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
KINDS = (".txt", ".csv")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,100}")


class UploadError(UserError):
    """An upload the page cannot score: too large, of another kind, or without reviews."""


@dataclass(frozen=True)
class ScoredUpload:
    """An upload's scores: the table shown, the CSV to download, the pass's counts."""

    table: pa.Table
    csv: bytes
    result: BatchResult


def check_upload(name: str, size: int) -> str:
    """The upload's kind (``.txt`` or ``.csv``), else UploadError naming what is accepted."""
    kind = Path(name).suffix.lower()
    if kind not in KINDS:
        raise UploadError(
            f"{name} is a {kind or 'file without an extension'}, not a .txt review or a .csv "
            "table of reviews: upload one of those"
        )
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} holds {size / 1024 / 1024:.1f} MB, over the limit of {MAX_UPLOAD_MB} MB: "
            "upload a smaller file, or score it with python -m runner infer"
        )
    if size == 0:
        raise UploadError(f"{name} is empty: upload a file with reviews in it")
    return kind


def _local_name(name: str, kind: str) -> str:
    """The upload's own name where it is a plain one (messages then name it), else a stand-in."""
    base = Path(name).name
    return base if _SAFE_NAME.fullmatch(base) else f"upload{kind}"


def score_upload(
    name: str,
    data: bytes,
    score: Callable[[list[str]], np.ndarray],
    *,
    model_name: str,
    model_version: str,
    text_column: str = "text",
) -> ScoredUpload:
    """``data`` (the file ``name``) scored by ``score``; UploadError, one line, when it cannot."""
    kind = check_upload(name, len(data))
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        local = _local_name(name, kind)
        if kind == ".txt":  # a review: a folder of one .txt file, as the batch code reads it
            source = Path(tmp, "reviews")
            source.mkdir()
            (source / local).write_bytes(data)
        else:
            source = Path(tmp, local)
            source.write_bytes(data)
        output = Path(tmp, "scores.csv")
        try:
            result = batch.score_files(
                source,
                output,
                score,
                model_name=model_name,
                model_version=model_version,
                text_column=text_column,
                include_text=True,
            )
        except ParameterError as exc:  # a column the table lacks: the columns it has
            raise UploadError(exc.problem.replace(f"{tmp}/", "")) from None
        except pa.ArrowInvalid as exc:  # rows of other widths, an unclosed quote
            problem = first_line(exc).replace(f"{tmp}/", "")
            raise UploadError(
                f"{name} is not a CSV table that can be read ({problem[:200]}): quote texts "
                "that hold commas or line breaks, and give every row the same columns"
            ) from None
        except DatasetError as exc:  # no reviews, a table that cannot be read
            problem = str(exc).replace(f"{source}", local).removeprefix("input_path ")
            raise UploadError(problem.replace(f"{tmp}/", "")) from None
        if result.reviews == 0:
            skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items() if n)
            raise UploadError(f"{name} has no review to score ({skipped}): upload some text")
        csv = output.read_bytes()
    return ScoredUpload(pcsv.read_csv(pa.BufferReader(csv)), csv, result)
