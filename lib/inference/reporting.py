"""What the infer notebook shows and records of a scoring pass: progress as it goes, then
a summary, the probabilities' histogram (and the confusion matrix when the input carries
labels), and the MLflow run's metrics and files."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib.core import progress
from lib.data.review_files import DEFAULT_CHUNK_SIZE
from lib.inference.batch import BatchResult, Progress
from lib.model import evaluation
from lib.tracking import runs

PROGRESS_EVERY_S = 2.0  # at most one progress line this often (and the last one)
PLOTS_FOLDER = "plots"  # the run's artifact folder for the figures
RESULTS_FOLDER = "results"  # and for the summary (summary.json)
SUMMARY_FILE = "summary.json"


def chunk_size(batch_size: int) -> int:
    """Reviews read at a time: a multiple of ``batch_size`` near the readers' default, so
    that every model call but the input's last has the same size (traced once)."""
    return max(DEFAULT_CHUNK_SIZE // batch_size, 1) * batch_size


def progress_reporter(every_s: float = PROGRESS_EVERY_S) -> Progress:
    """A progress callable for :func:`lib.inference.batch.score_files` that sends a
    :func:`lib.core.progress.reviews_event` at most every ``every_s`` seconds, and when the
    last review of a known total is done."""
    last = [float("-inf")]

    def report(done: int, total: int | None, seconds: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or (total is not None and done >= total):
            last[0] = now
            progress.emit(progress.reviews_event(done, total, seconds))

    return report


def summary(result: BatchResult, truncated: int = 0) -> dict[str, Any]:
    """The pass in figures: counts, skipped by reason, reviews cut at the model's length,
    share positive, speed, the input's fingerprint, and the metrics when labelled."""
    out: dict[str, Any] = {
        **result.metrics(),
        "truncated": int(truncated),
        "threshold": result.threshold,
        "input_fingerprint": result.fingerprint,
    }
    if result.confusion_matrix is not None:
        out["confusion_matrix"] = result.confusion_matrix
    if any(result.skipped_examples.values()):
        out["skipped_examples"] = result.skipped_examples  # the first few ids per reason
    return out


def logged_metrics(figures: dict[str, Any]) -> dict[str, float]:
    """The numbers of a :func:`summary` as MLflow metrics; the confusion matrix as its four
    cells (``true_negatives``, ``false_positives``, ``false_negatives``,
    ``true_positives``)."""
    metrics = {
        k: float(v)
        for k, v in figures.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "threshold"
    }  # the threshold is a parameter of the run
    matrix = figures.get("confusion_matrix")
    if matrix is not None:
        (tn, fp), (fn, tp) = matrix
        metrics.update(true_negatives=tn, false_positives=fp, false_negatives=fn, true_positives=tp)
    return metrics


@dataclass
class Plot:
    """A figure saved as a PNG file (for the run) and ready to show (with its text)."""

    file: Path
    output: evaluation.FigureOutput


def plot_histogram(result: BatchResult):
    """The probabilities' histogram, with the threshold marked."""
    import matplotlib.pyplot as plt

    bins = len(result.histogram)
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(edges[:-1], result.histogram, width=1.0 / bins, align="edge", edgecolor="white")
    ax.axvline(result.threshold, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of positive")
    ax.set_ylabel("reviews")
    ax.set_title(f"{result.reviews:,} reviews, {100 * result.positive_share:.1f}% positive")
    fig.tight_layout()
    return fig


def describe_histogram(result: BatchResult) -> str:
    """The histogram in words (the figure's alternative text)."""
    counts = np.asarray(result.histogram)
    low = int(counts[: len(counts) // 2].sum())
    return (
        f"Histogram of the probability of positive for {result.reviews:,} reviews in "
        f"{len(counts)} bins: {low:,} below 0.5, {result.reviews - low:,} at 0.5 or above; "
        f"{result.positive:,} labelled positive at the threshold {result.threshold:g}."
    )


def plots(result: BatchResult, folder: Path | None = None) -> list[Plot]:
    """The histogram, and the confusion matrix when the input carried labels, saved as PNG
    files in ``folder`` (else a new temporary folder)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="infer-plots-"))
    made = [("probability_histogram.png", plot_histogram(result), describe_histogram(result))]
    if result.confusion_matrix is not None:
        matrix = np.asarray(result.confusion_matrix)
        title = "confusion matrix"
        made.append(
            (
                "confusion_matrix.png",
                evaluation.plot_confusion_matrix(matrix, title),
                evaluation.describe_confusion_matrix(matrix, title),
            )
        )
    out = []
    for name, figure, text in made:
        path = evaluation.save_figure(figure, folder / name)
        out.append(Plot(path, evaluation.figure_output(figure, text)))
    return out


def show(shown: list[Plot]) -> None:
    """Display each plot in the notebook."""
    from IPython.display import display

    for plot in shown:
        display(plot.output)


def log_run(figures: dict[str, Any], shown: list[Plot]) -> None:
    """Log a :func:`summary` to the active MLflow run: its numbers as metrics, the input's
    fingerprint as a parameter, the whole as ``summary.json``, and the plots' files."""
    runs.log_params({"input_fingerprint": figures.get("input_fingerprint", "")})
    folder = shown[0].file.parent if shown else Path(tempfile.mkdtemp(prefix="infer-"))
    summary_file = folder / SUMMARY_FILE
    summary_file.write_text(json.dumps(figures, indent=1, sort_keys=True), encoding="utf-8")
    files = [(PLOTS_FOLDER, plot.file) for plot in shown] + [(RESULTS_FOLDER, summary_file)]
    runs.log_results(logged_metrics(figures), files)
