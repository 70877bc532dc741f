"""The streaming loop: reviews read in chunks, scored by a callable, written as they come.

The model is injected: ``score(texts) -> probabilities of positive`` (one per text), so this
module loads no TensorFlow. Memory holds one chunk of texts at a time; what is kept over the
whole input is counts, a histogram, and, when the input carries labels, one byte and one
float per review for the AUC.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lib.core.errors import ParameterError
from lib.data import review_files
from lib.data.review_files import ReviewChunk
from lib.inference import writers
from lib.inference.writers import ScoreWriter
from lib.model import evaluation

Score = Callable[[list[str]], np.ndarray]
# (reviews done, reviews in all or None when unknown, seconds since the start)
Progress = Callable[[int, int | None, float], None]
HISTOGRAM_BINS = 20
EXAMPLES_KEPT = 10  # skipped ids kept per reason (the counts are whole)


@dataclass
class BatchResult:
    """What a scoring pass did: counts, speed, and metrics when the input had labels."""

    reviews: int = 0  # scored and written
    positive: int = 0  # labelled positive by the threshold
    skipped: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(review_files.SKIP_REASONS, 0)
    )
    skipped_examples: dict[str, list[str | int]] = field(default_factory=dict)
    seconds: float = 0.0
    threshold: float = 0.5
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    accuracy: float | None = None
    auc: float | None = None
    confusion_matrix: list[list[int]] | None = None  # rows true neg/pos, columns predicted
    # sha256 of the reviews read, in order: ids, texts, labels, and the ids skipped by reason
    fingerprint: str = ""

    @property
    def positive_share(self) -> float:
        """The share of scored reviews labelled positive (0 when none was scored)."""
        return self.positive / self.reviews if self.reviews else 0.0

    @property
    def reviews_per_s(self) -> float:
        """Scored reviews a second over the whole pass (reading and writing included)."""
        return self.reviews / self.seconds if self.seconds > 0 else 0.0

    def metrics(self) -> dict[str, Any]:
        """Flat figures to log: counts, skipped by reason, share positive, speed, metrics."""
        out: dict[str, Any] = {
            "reviews": self.reviews,
            "skipped": sum(self.skipped.values()),
            **{f"skipped_{reason}": n for reason, n in self.skipped.items()},
            "positive_share": self.positive_share,
            "reviews_per_s": self.reviews_per_s,
            "seconds": self.seconds,
        }
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy
            out["auc"] = self.auc
        return out


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float strictly between 0 and 1, else ParameterError."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise ParameterError("threshold", f"{threshold!r} is not a number between 0 and 1")
    return value


class _Fingerprint:
    """sha256 of the reviews read, in order, whatever the chunks: a stream each of ids,
    text lengths, texts, labels and the ids skipped for each reason (a stream's bytes do not
    depend on where chunks cut it), digested together at the end."""

    def __init__(self) -> None:
        self._streams: dict[str, Any] = {}

    def _add(self, stream: str, data: bytes) -> None:
        self._streams.setdefault(stream, hashlib.sha256()).update(data)

    @staticmethod
    def _ids(ids: list) -> bytes:
        # Compact JSON, each id followed by a comma: chunks join as one list would.
        # default=str: an id column of dates or decimals.
        return (json.dumps(ids, separators=(",", ":"), default=str)[1:-1] + ",").encode()

    def update(self, chunk: ReviewChunk) -> None:
        if chunk.texts:
            self._add("ids", self._ids(chunk.ids))
            lengths = np.fromiter(map(len, chunk.texts), np.int64, len(chunk.texts))
            self._add("lengths", lengths.tobytes())
            self._add("texts", "".join(chunk.texts).encode("utf-8", "surrogatepass"))
            if chunk.labels is not None:
                self._add("labels", np.asarray(chunk.labels, dtype=np.int8).tobytes())
        for reason, ids in chunk.skipped.items():
            if ids:
                self._add(f"skipped_{reason}", self._ids(ids))

    def hexdigest(self) -> str:
        parts = "".join(f"{k}:{d.hexdigest()}\n" for k, d in sorted(self._streams.items()))
        return "sha256:" + hashlib.sha256(parts.encode()).hexdigest()


def _count_skipped(result: BatchResult, chunk: ReviewChunk) -> None:
    for reason, ids in chunk.skipped.items():
        result.skipped[reason] = result.skipped.get(reason, 0) + len(ids)
        kept = result.skipped_examples.setdefault(reason, [])
        kept.extend(ids[: max(EXAMPLES_KEPT - len(kept), 0)])


def score_reviews(
    chunks: Iterable[ReviewChunk],
    score: Score,
    writer: ScoreWriter,
    *,
    threshold: float = 0.5,
    total: int | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every chunk with ``score`` and write its rows with ``writer``, in input order.

    ``progress`` is called after each chunk. Labels, when the chunks carry them, give the
    accuracy (at ``threshold``), the AUC and the confusion matrix."""
    threshold = check_threshold(threshold)
    result = BatchResult(threshold=threshold)
    all_labels: list[np.ndarray] = []
    all_probabilities: list[np.ndarray] = []
    started = time.perf_counter()
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    fingerprint = _Fingerprint()
    for chunk in chunks:
        _count_skipped(result, chunk)
        fingerprint.update(chunk)
        if chunk.texts:
            probabilities = np.asarray(score(chunk.texts), dtype=np.float64).ravel()
            if len(probabilities) != len(chunk.texts):
                raise ValueError(
                    f"score returned {len(probabilities)} probabilities for "
                    f"{len(chunk.texts)} texts"
                )  # the injected model's bug, not the user's
            predicted = (probabilities >= threshold).astype(np.int64)
            writer.write(chunk.ids, probabilities, predicted, chunk.texts)
            result.reviews += len(chunk.texts)
            result.positive += int(predicted.sum())
            histogram += np.histogram(np.clip(probabilities, 0.0, 1.0), edges)[0]
            if chunk.labels is not None:
                all_labels.append(np.asarray(chunk.labels, dtype=np.int8))
                all_probabilities.append(probabilities.astype(np.float32))
        if progress is not None:
            progress(result.reviews, total, time.perf_counter() - started)
    result.seconds = time.perf_counter() - started
    result.histogram = histogram.tolist()
    result.fingerprint = fingerprint.hexdigest()
    if all_labels:
        labels = np.concatenate(all_labels)
        probabilities = np.concatenate(all_probabilities).astype(np.float64)
        matrix = evaluation.confusion_matrix(labels, probabilities, threshold)
        result.confusion_matrix = matrix.tolist()
        result.accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
        result.auc = evaluation.binary_metrics(labels, probabilities, "auc")["auc"]
    return result


def score_files(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    score: Score,
    *,
    model_name: str,
    model_version: str,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
    chunk_size: int = review_files.DEFAULT_CHUNK_SIZE,
    threshold: float = 0.5,
    overwrite: bool = False,
    include_text: bool = False,
    progress: Progress | None = None,
) -> BatchResult:
    """Score the reviews at ``input_path`` into ``output_path`` (both local or ``gs://``).

    The output and the threshold are checked before anything is read; the output appears
    only when every review is written."""
    threshold = check_threshold(threshold)
    writers.check_output(output_path, overwrite)
    with review_files.open_reviews(
        input_path,
        text_column=text_column,
        id_column=id_column,
        label_column=label_column,
        chunk_size=chunk_size,
    ) as source:
        with writers.open_scores(
            output_path,
            model_name=model_name,
            model_version=model_version,
            include_text=include_text,
            overwrite=overwrite,
        ) as writer:
            return score_reviews(
                source.chunks(),
                score,
                writer,
                threshold=threshold,
                total=source.total,
                progress=progress,
            )
