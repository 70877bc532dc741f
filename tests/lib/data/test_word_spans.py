"""lib.data.word_spans: each cleaned word placed in the raw review, checked against the
cleaning itself on awkward text."""

from __future__ import annotations

import random

from lib.data.cleaning import clean, clean_text
from lib.data.word_spans import word_spans

# Tags, "<" and ">" that open or close nothing, punctuation inside words, one-letter words,
# combining marks, digits, capitals, non-ASCII spaces.
_AWKWARD = [*"ab é<>/ !'\t\n\u00a0\u2003.xY1-_", "<br />", "<i>", "</p>", "e\u0301", "\v", "  "]


def test_each_word_is_placed_where_it_is_written():
    text = "I LOVED it!<br /><br />Don't miss <i>Café</i> 10/10, a must-see."
    placed = word_spans(text)
    assert placed.words == clean_text(text).split(" ")
    assert [text[s:e] for s, e in placed.spans] == [
        "LOVED", "it", "Don", "miss", "Café", "10", "10", "must", "see"
    ]  # fmt: skip


def test_words_inside_tags_are_not_words():
    placed = word_spans('<img src="x" onerror="alert(1)">good <b>fun</b>')
    assert placed.words == ["good", "fun"]
    assert [placed.text[s:e] for s, e in placed.spans] == ["good", "fun"]


def test_an_empty_review_has_no_words():
    assert word_spans("").words == [] and word_spans("").spans == []
    assert word_spans("<br /> !! a").words == []


def test_the_spans_give_the_cleaned_words_on_random_awkward_text():
    rng = random.Random(1)
    texts = ["".join(rng.choices(_AWKWARD, k=rng.randint(0, 40))) for _ in range(2000)]
    placed_all = 0
    for text, cleaned in zip(texts, clean(texts).to_pylist(), strict=True):
        placed = word_spans(text, cleaned)
        assert placed.words == (cleaned.split(" ") if cleaned else [])
        if placed.spans is not None:
            placed_all += 1
            assert [text[s:e].lower() for s, e in placed.spans] == placed.words
    assert placed_all == 2000  # every one of these characters is placed


def test_words_that_cannot_be_placed_stand_alone():
    # U+0130 lowercases to two characters in Python ("i" and a combining dot).
    placed = word_spans("\u0130stanbul was great")
    assert placed.words == clean_text("\u0130stanbul was great").split(" ")
    assert placed.spans is None or [placed.text[s:e].lower() for s, e in placed.spans] == (
        placed.words
    )
