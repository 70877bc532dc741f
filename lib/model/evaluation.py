"""Evaluation figures: learning curves and the confusion matrix, and how a notebook shows a
figure (with its alternative text)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.core.errors import output_faults

LABEL_NAMES = ("negative", "positive")
DPI = 110  # the saved and the shown figures


def binary_metrics(
    labels: np.ndarray, probabilities: np.ndarray, metric: str = "accuracy"
) -> dict[str, float]:
    """``loss`` (binary cross-entropy, clipped as Keras does), ``accuracy`` and ``metric``."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    predicted = p >= 0.5
    results = {
        "loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "accuracy": float(np.mean(predicted == (y == 1))),
    }
    if metric == "precision":
        results["precision"] = float((predicted & (y == 1)).sum() / max(predicted.sum(), 1))
    elif metric == "recall":
        results["recall"] = float((predicted & (y == 1)).sum() / max((y == 1).sum(), 1))
    elif metric == "auc":
        # Mann-Whitney U: the chance a random positive scores above a random negative, a tie
        # counting one half (tied scores share their average rank, as sklearn's AUC does).
        ranks = _average_ranks(np.asarray(probabilities, dtype=np.float64).ravel())
        n_pos, n_neg = (y == 1).sum(), (y == 0).sum()
        u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2
        results["auc"] = float(u / max(n_pos * n_neg, 1))
    return results


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the average of their ranks."""
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def split_metrics(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]], metric: str = "accuracy"
) -> dict[str, float]:
    """:func:`binary_metrics` of each split's ``(labels, probabilities)``, flat and prefixed
    with the split's name: ``{"val": ..., "test": ...}`` -> ``{"val_loss": ..., ...,
    "test_accuracy": ...}`` (the names the train notebook logs and glues)."""
    return {
        f"{split}_{name}": value
        for split, (labels, probabilities) in splits.items()
        for name, value in binary_metrics(labels, probabilities, metric).items()
    }


def confusion_matrix(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5):
    """2x2 counts: rows are true labels (neg, pos), columns predicted labels."""
    labels = np.asarray(labels).astype(int).ravel()
    predicted = (np.asarray(probabilities).ravel() >= threshold).astype(int)
    matrix = np.zeros((2, 2), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def plot_learning_curves(history: Mapping[str, list[float]], metric: str = "accuracy"):
    """Loss and ``metric`` per epoch, train and validation, side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name in zip(axes, ("loss", metric), strict=True):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history:
                values = history[key]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray, title: str = "test confusion matrix"):
    """The confusion matrix with counts and row percentages."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(matrix, cmap="Blues")
    totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(
            j,
            i,
            f"{count}\n{100 * count / totals[i, 0]:.1f}%",
            ha="center",
            va="center",
            color=colour,
        )
    ax.set_xticks([0, 1], labels=[f"pred. {n}" for n in LABEL_NAMES])
    ax.set_yticks([0, 1], labels=[f"true {n}" for n in LABEL_NAMES])
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made if needed)."""
    path = Path(path)
    with output_faults("output folder", path.parent):  # read-only or full: one line
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def describe_learning_curves(history: Mapping[str, list[float]], metric: str = "accuracy") -> str:
    """The alternative text of :func:`plot_learning_curves`' figure: what each curve did."""
    epochs = max((len(v) for v in history.values()), default=0)
    parts = []
    for name in ("loss", metric):
        curves = [
            f"{label} from {history[key][0]:.3f} to {history[key][-1]:.3f}"
            for key, label in ((name, "train"), (f"val_{name}", "validation"))
            if history.get(key)
        ]
        if curves:
            parts.append(f"{name} ({', '.join(curves)})")
    shown = " and ".join(parts) or "no metrics"
    return f"Learning curves over {epochs} epoch(s): {shown}."


def describe_confusion_matrix(matrix: np.ndarray, title: str = "test confusion matrix") -> str:
    """The alternative text of :func:`plot_confusion_matrix`' figure: its counts in words."""
    rows = []
    for i, true in enumerate(LABEL_NAMES):
        total = int(matrix[i].sum())
        counts = ", ".join(
            f"{int(matrix[i, j])} ({100 * matrix[i, j] / max(total, 1):.1f}%) predicted {predicted}"
            for j, predicted in enumerate(LABEL_NAMES)
        )
        rows.append(f"of {total} {true} reviews, {counts}")
    return f"{title[:1].upper()}{title[1:]}: {'; '.join(rows)}."


@dataclass(frozen=True)
class FigureOutput:
    """A figure as a notebook shows it: its PNG in an ``<img>`` with alternative text.

    nbconvert's HTML export takes the ``text/html`` form as it is (its lab template writes
    no ``alt`` for an ``image/png`` output, and warns of each such image); JupyterLab shows
    the same ``<img>``; ``text/plain`` is the text where no image can be shown."""

    png: bytes
    alt: str

    def _repr_mimebundle_(self, **_ignored: object) -> dict[str, str]:
        data = base64.b64encode(self.png).decode("ascii")
        alt = html.escape(self.alt, quote=True)
        return {
            "text/html": f'<img src="data:image/png;base64,{data}" alt="{alt}">',
            "text/plain": self.alt,
        }


def figure_output(fig, alt: str) -> FigureOutput:
    """``fig`` for display with ``alt`` as its alternative text; the figure is closed, so
    that matplotlib's inline backend does not show it a second time, without the text."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return FigureOutput(buffer.getvalue(), alt)
