"""app.uploads: a .txt or .csv upload scored by the batch-scoring code into a table and its
CSV; an upload too large, of another kind, empty, or without the text column is one line."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from app import uploads
from app.uploads import UploadError, score_upload


def _score(texts: list[str]) -> np.ndarray:
    """P(positive): 0.9 for a text with "good", else 0.2 (the page's model, in miniature)."""
    return np.array([0.9 if "good" in t else 0.2 for t in texts])


def _scored(name: str, data: bytes, **options):
    return score_upload(name, data, _score, model_name="m", model_version="3", **options)


def _rows(csv_bytes: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(csv_bytes.decode())))


def test_a_csv_is_scored_row_by_row_with_its_texts():
    scored = _scored("r.csv", b'text\n"good <b>film</b>, **ok**"\nbad film\n\n" "\n')
    rows = _rows(scored.csv)
    assert [(r["text"], r["label"]) for r in rows] == [
        ("good <b>film</b>, **ok**", "1"),
        ("bad film", "0"),
    ]
    assert {(r["model_name"], r["model_version"]) for r in rows} == {("m", "3")}
    assert scored.table.num_rows == 2 and scored.table.column("probability").to_pylist() == [
        pytest.approx(0.9),
        pytest.approx(0.2),
    ]
    assert scored.result.reviews == 2 and scored.result.positive == 1
    assert scored.result.skipped["empty"] == 1  # the blank row; pyarrow drops the empty line


def test_a_txt_is_one_review():
    rows = _rows(_scored("my review.txt", b"A good film.\nTwo lines.").csv)
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [
        ("my review.txt", "A good film.\nTwo lines.", "1")
    ]


def test_another_text_column_is_read_when_named():
    rows = _rows(_scored("r.csv", b"id,review\n7,good\n", text_column="review").csv)
    assert [r["label"] for r in rows] == ["1"]


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("r.pdf", b"%PDF", "r.pdf is a .pdf, not a .txt review or a .csv table of reviews"),
        ("notes", b"good", "notes is a file without an extension"),
        ("r.csv", b"", "r.csv is empty: upload a file with reviews in it"),
        (
            "r.csv",
            b"x" * (uploads.MAX_UPLOAD_BYTES + 1),
            f"over the limit of {uploads.MAX_UPLOAD_MB} MB",
        ),
        (
            "r.csv",
            b"review,stars\ngood,5\n",
            "'text' is not a column of r.csv; its columns are 'review', 'stars'",
        ),
        ("r.txt", b"  \n", "r.txt has no review to score (1 empty)"),
        ("r.csv", b"id,text\n1,good, really good\n", "r.csv is not a CSV table that can be read"),
    ],
)
def test_an_upload_it_cannot_score_is_one_line_naming_the_problem(name, data, said):
    with pytest.raises(UploadError) as caught:
        _scored(name, data)
    message = str(caught.value)
    assert said in message and "\n" not in message
    assert "/tmp" not in message and "upload-" not in message  # no temporary folder named


def test_an_odd_file_name_is_not_written_as_given():
    rows = _rows(_scored("../../evil name?.txt", b"good").csv)
    assert [r["id"] for r in rows] == ["upload.txt"]
