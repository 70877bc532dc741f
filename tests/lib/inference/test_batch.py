"""The streaming loop: every review scored once, in order, with counts and metrics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from lib.core.errors import DatasetError, ParameterError
from lib.inference.batch import check_threshold, score_files
from tests.lib.inference.test_writers import read_scores
from tests.support.datagen import NEGATIVE, POSITIVE, make_raw_dir, write_review


def cue_score(texts: list[str]) -> np.ndarray:
    """A real, deterministic scorer: the share of the sentiment words that are positive."""
    out = []
    for text in texts:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        pos = sum(w in POSITIVE for w in words)
        neg = sum(w in NEGATIVE for w in words)
        out.append((pos + 0.5) / (pos + neg + 1.0))
    return np.array(out)


def test_a_labelled_folder_is_scored_in_order_with_metrics(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=12, words=6)
    write_review(root, "test", 1, 90, 9, "")
    write_review(root, "test", 0, 91, 1, b"\xff\xfe")
    calls: list[int] = []
    seen: list[tuple[int, int | None]] = []
    result = score_files(
        root / "test",
        tmp_path / "scores.jsonl",
        lambda texts: calls.append(len(texts)) or cue_score(texts),
        model_name="imdb-sentiment",
        model_version="7",
        chunk_size=5,
        progress=lambda done, total, seconds: seen.append((done, total)),
    )
    rows = read_scores(tmp_path / "scores.jsonl")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert len(rows) == result.reviews == 24 and max(calls) <= 5
    assert result.skipped == {"empty": 1, "not_utf8": 1, "null": 0}
    assert result.skipped_examples == {"empty": ["pos/90_9.txt"], "not_utf8": ["neg/91_1.txt"]}
    assert seen[-1] == (24, 26) and len(seen) == 6
    labels = np.array([1 if r["id"].startswith("pos/") else 0 for r in rows])
    probabilities = np.array([r["probability"] for r in rows])
    predicted = (probabilities >= 0.5).astype(int)
    assert [r["label"] for r in rows] == predicted.tolist()
    assert result.accuracy == pytest.approx(np.mean(predicted == labels))
    assert result.auc == pytest.approx(roc_auc_score(labels, probabilities))
    matrix = np.array(result.confusion_matrix)
    assert matrix.sum() == 24 and np.trace(matrix) == round(result.accuracy * 24)
    assert result.positive_share == pytest.approx(predicted.mean())
    assert sum(result.histogram) == 24
    metrics = result.metrics()
    assert metrics["skipped"] == 2 and metrics["accuracy"] == result.accuracy


def test_a_threshold_moves_the_labels_and_an_unlabelled_table_has_no_metrics(tmp_path):
    texts = ["great superb film", "awful boring", "great awful", "the plot"]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": texts, "key": ["w", "x", "y", "z"]}), path)
    result = score_files(
        path,
        tmp_path / "s.csv",
        cue_score,
        model_name="m",
        model_version="1",
        text_column="body",
        id_column="key",
        threshold=0.8,
    )
    rows = read_scores(tmp_path / "s.csv")
    assert [r["id"] for r in rows] == ["w", "x", "y", "z"]
    assert [r["label"] for r in rows] == [1, 0, 0, 0]
    assert result.accuracy is None and result.confusion_matrix is None
    assert "accuracy" not in result.metrics()


def test_bad_output_is_refused_before_the_input_is_read(tmp_path):
    def never(texts):
        raise AssertionError("scored")

    with pytest.raises(ParameterError, match="output_path"):
        score_files(
            tmp_path / "missing", tmp_path / "s.xlsx", never, model_name="m", model_version="1"
        )
    (tmp_path / "s.jsonl").write_text("")
    with pytest.raises(ParameterError, match="already exists"):
        score_files(
            tmp_path / "missing", tmp_path / "s.jsonl", never, model_name="m", model_version="1"
        )
    with pytest.raises(ParameterError, match="threshold"):
        score_files(
            tmp_path / "missing",
            tmp_path / "t.jsonl",
            never,
            model_name="m",
            model_version="1",
            threshold=1.5,
        )


def test_a_failure_midway_or_an_empty_input_leaves_no_output(tmp_path):
    root = make_raw_dir(tmp_path / "raw", per_label=5)

    def fails_on_the_second_chunk(texts, calls=[]):  # noqa: B006 - counts calls
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return cue_score(texts)

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        score_files(
            root,
            out / "s.parquet",
            fails_on_the_second_chunk,
            model_name="m",
            model_version="1",
            chunk_size=4,
        )
    assert list(out.iterdir()) == []
    (tmp_path / "header.csv").write_text("text\n")
    with pytest.raises(DatasetError, match="holds no reviews"):
        score_files(
            tmp_path / "header.csv", out / "s.jsonl", cue_score, model_name="m", model_version="1"
        )
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("value", [0, 1, -0.1, "x", None])
def test_threshold_is_strictly_between_0_and_1(value):
    with pytest.raises(ParameterError, match="threshold"):
        check_threshold(value)


def test_the_fingerprint_is_of_the_reviews_read_whatever_the_chunks(tmp_path):
    def fingerprint(table: pa.Table, chunk_size: int = 2, label_column=None) -> str:
        path = tmp_path / f"t{len(list(tmp_path.iterdir()))}.parquet"
        pq.write_table(table, path)
        output = tmp_path / f"{path.stem}.jsonl"
        return score_files(
            path, output, cue_score, model_name="m", model_version="1", chunk_size=chunk_size,
            id_column="id", label_column=label_column,
        ).fingerprint  # fmt: skip

    texts = ["Superb and moving.", "Dull.", None, "A waste."]
    base = pa.table({"id": ["a", "b", "c", "d"], "text": texts, "label": [1, 0, 1, 0]})
    first = fingerprint(base)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert fingerprint(base, chunk_size=3) == first  # read in other chunks: the same reviews
    changed_text = base.set_column(1, "text", pa.array(["Superb and moving!", *texts[1:]]))
    changed_id = base.set_column(0, "id", pa.array(["a", "b", "x", "d"]))  # a skipped one's
    joined = base.set_column(1, "text", pa.array(["Superb and moving.Dull.", "", *texts[2:]]))
    assert len({first, *map(fingerprint, (changed_text, changed_id, joined))}) == 4
    assert fingerprint(base, label_column="label") != first  # its labels read too
