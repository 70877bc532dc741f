"""An explained review (:class:`Explanation`, made by :mod:`lib.model.explain`) and how it
is shown: its words marked by contribution, as HTML, for a page or a notebook. No TensorFlow.

A review is text, never markup: every piece of it is escaped before the marks are put
around the words (``<br />``, ``<script>``, ``<img onerror=...>`` show as written), and the
characters that Markdown or math rendering would read (``*``, ``_``, ``$``, ...) are written
as character references, so that a page that renders Markdown shows them as written too.
Green marks push towards positive, red towards negative; the stronger the contribution
(against the strongest of the review), the stronger the colour.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

EXACT, LEAVE_ONE_OUT = "exact", "leave-one-out"
POSITIVE_RGB = (22, 163, 74)  # green
NEGATIVE_RGB = (220, 38, 38)  # red
_MIN_ALPHA, _MAX_ALPHA = 0.08, 0.75
# HTML's own (&, <, >, quotes) and what Markdown (emphasis, code, links, headings, lists,
# tables), math ($) or a template reads: each written as a character reference, in one pass.
_SPECIAL = "&<>\"'\\`*_{}[]()#+-.!|~$:"
_REFERENCES = {ord(c): f"&#{ord(c)};" for c in _SPECIAL}


@dataclass(frozen=True)
class Explanation:
    """One review explained: its ``words`` (cleaned, as the model reads them), their
    ``spans`` in ``text`` (None when they cannot be placed), one contribution per word (in
    logits for ``exact``, in probability for ``leave-one-out``), P(positive) and, for
    ``exact``, the ``bias`` that the contributions add up to the logit with."""

    text: str
    words: list[str]
    spans: list[tuple[int, int]] | None
    contributions: np.ndarray
    probability: float
    method: str
    bias: float | None = None

    @property
    def unit(self) -> str:
        """What a contribution measures: ``logit`` (exact) or ``probability``."""
        return "logit" if self.method == EXACT else "probability"

    def top_words(self, count: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The ``count`` words that pushed most towards positive and towards negative, each
        word once (its occurrences added up), strongest first."""
        totals: dict[str, float] = defaultdict(float)
        for word, value in zip(self.words, self.contributions.tolist(), strict=True):
            totals[word] += value
        ranked = sorted(totals.items(), key=lambda item: item[1])
        positive = [(w, v) for w, v in reversed(ranked) if v > 0][:count]
        negative = [(w, v) for w, v in ranked if v < 0][:count]
        return positive, negative


def escape_text(text: str) -> str:
    """``text`` as HTML that shows it literally, even where Markdown is rendered."""
    return text.translate(_REFERENCES)


def _mark(word: str, value: float, strongest: float, unit: str) -> str:
    if strongest <= 0 or value == 0:
        return escape_text(word)
    red, green, blue = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    alpha = _MIN_ALPHA + (_MAX_ALPHA - _MIN_ALPHA) * min(abs(value) / strongest, 1.0)
    kind = "positive" if value > 0 else "negative"
    title = escape_text(f"{value:+.3f} ({unit})")
    return (
        f'<mark class="word {kind}" title="{title}" '
        f'style="background-color: rgba({red}, {green}, {blue}, {alpha:.2f}); '
        f'color: inherit; padding: 0 1px; border-radius: 2px">{escape_text(word)}</mark>'
    )


def highlighted_html(explanation: Explanation) -> str:
    """The review as written, its words marked; the cleaned words when they cannot be
    placed in it (:attr:`Explanation.spans` is None)."""
    values = explanation.contributions.tolist()
    strongest = max((abs(v) for v in values), default=0.0)
    unit = explanation.unit
    pieces: list[str] = []
    if explanation.spans is None:
        pieces = [
            _mark(w, v, strongest, unit) for w, v in zip(explanation.words, values, strict=True)
        ]
        body = " ".join(pieces)
    else:
        text, position = explanation.text, 0
        for (start, end), value in zip(explanation.spans, values, strict=True):
            pieces.append(escape_text(text[position:start]))
            pieces.append(_mark(text[start:end], value, strongest, unit))
            position = end
        pieces.append(escape_text(text[position:]))
        body = "".join(pieces)
    return f'<div class="review" style="white-space: pre-wrap; line-height: 1.7">{body}</div>'


class HighlightedReview:
    """An explained review that a notebook shows marked (IPython's ``_repr_html_``)."""

    def __init__(self, explanation: Explanation) -> None:
        self.explanation = explanation

    def _repr_html_(self) -> str:
        positive, negative = self.explanation.top_words(5)
        listed = "; ".join(
            f"{side}: " + ", ".join(f"{escape_text(w)} ({v:+.2f})" for w, v in words)
            for side, words in (("positive", positive), ("negative", negative))
            if words
        )
        return (
            f"<p>P(positive) = {self.explanation.probability:.3f} "
            f"({escape_text(self.explanation.method)}, {self.explanation.unit}); {listed}</p>"
            + highlighted_html(self.explanation)
        )
