"""Where each word a model reads sits in the review as written.

The models read a review cleaned (:mod:`lib.data.cleaning`): lowercased, tags and punctuation
turned into spaces, one-letter words dropped. :func:`word_spans` finds, for each word of the
cleaned review, its place in the raw text, so that a page can mark the words there: the runs
of letters, combining marks and digits outside HTML tags, less the one-letter ones, are the
cleaned words in order. The spans are checked against :func:`lib.data.cleaning.clean_text`
itself: where the two part (a character whose lowercase form is longer or not a letter), the
spans are None and the cleaned words stand alone.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from lib.data.cleaning import HTML_TAG, clean_text

_TAG = re.compile(HTML_TAG)
_ASCII_RUN = re.compile(r"[A-Za-z0-9]+")  # most reviews: no mark, no other letter


@dataclass(frozen=True)
class ReviewWords:
    """A review's cleaned ``words`` (what the model reads, in order) and ``spans``: the
    ``(start, end)`` of each word in ``text``, or None when they cannot be placed."""

    text: str
    words: list[str]
    spans: list[tuple[int, int]] | None


@lru_cache(maxsize=1)
def _word_run() -> re.Pattern[str]:
    """A run of the cleaning's word characters (\\p{L}\\p{M}\\p{N}): Python's alphanumerics
    (letters and numbers) and the combining marks, whose ranges are read from the Unicode
    database once (a fraction of a second)."""
    ranges, start = [], None
    for code in range(sys.maxunicode + 2):
        mark = code <= sys.maxunicode and unicodedata.category(chr(code))[0] == "M"
        if mark and start is None:
            start = code
        elif not mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    return re.compile(rf"(?:[^\W_]|[{''.join(ranges)}])+")


def _single_letter(word: str) -> bool:
    # The cleaning's SINGLE_LETTERS: one letter and its combining marks.
    if len(word) == 1 or word[1].isalnum():  # most words: no mark after the first letter
        return len(word) == 1 and word.isalpha()
    return unicodedata.category(word[0])[0] == "L" and all(
        unicodedata.category(c)[0] == "M" for c in word[1:]
    )


def _runs(text: str, start: int, end: int, run: re.Pattern[str]) -> list[tuple[int, int]]:
    """The runs of word characters in ``text[start:end]``."""
    return [found.span() for found in run.finditer(text, start, end)]


def word_spans(text: str, cleaned: str | None = None) -> ReviewWords:
    """``text``'s cleaned words, each with its span in ``text`` when they can be placed.
    ``cleaned``: ``text`` as the cleaning gave it, when it is at hand (a model's own
    ``tf_clean``, which is faster on one review than Arrow's ``clean_text``)."""
    if cleaned is None:
        cleaned = clean_text(text)
    words = cleaned.split(" ") if cleaned else []
    run = _ASCII_RUN if text.isascii() else _word_run()
    spans: list[tuple[int, int]] = []
    position = 0
    for tag in _TAG.finditer(text):  # tags first, as cleaning's first step removes them
        spans.extend(_runs(text, position, tag.start(), run))
        position = tag.end()
    spans.extend(_runs(text, position, len(text), run))
    lowered = [text[start:end].lower() for start, end in spans]
    kept = [i for i, word in enumerate(lowered) if not _single_letter(word)]
    placed = [lowered[i] for i in kept]
    return ReviewWords(text, words, [spans[i] for i in kept] if placed == words else None)
