"""lib.model.explanation: the top words each way, and the review shown as HTML whose every
piece of markup shows as written (escaped before the words are marked), nothing of it run."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from lib.data.word_spans import word_spans
from lib.model.explanation import (
    EXACT,
    LEAVE_ONE_OUT,
    Explanation,
    HighlightedReview,
    escape_text,
    highlighted_html,
)

MARKUP = {
    "line breaks": "Great fun.<br /><br />Loved it",
    "script": "Great <script>alert('x')</script> film",
    "image": 'Awful <img src=x onerror="alert(1)"> film',
    "bold": "**bold** claims, __dull__ film",
    "dollars": "It cost $5 and $10 to see",
    "link": "[click](javascript:alert(1)) `code` # heading",
}


def _explained(text: str, method: str = EXACT) -> Explanation:
    placed = word_spans(text)
    values = np.linspace(-1.0, 1.0, len(placed.words)) if placed.words else np.zeros(0)
    return Explanation(text, placed.words, placed.spans, values, 0.5, method, 0.0)


def _shown_text(markup: str) -> str:
    """What a browser shows of ``markup``: its tags' text, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.mark.parametrize("case", sorted(MARKUP))
def test_markup_in_a_review_is_shown_as_written(case):
    text = MARKUP[case]
    shown = highlighted_html(_explained(text))
    assert _shown_text(shown) == text
    # The only tags are the marks and the review's box: nothing of the review is markup.
    assert set(re.findall(r"<\s*/?\s*([a-zA-Z]+)", shown)) == {"div", "mark"}
    assert not re.search(r"[*$`\[\]_]", re.sub(r"<[^>]+>", "", shown))  # Markdown reads none


def test_each_word_is_marked_by_the_sign_and_strength_of_its_contribution():
    text = "awful plot, fine music, superb cast"
    placed = word_spans(text)
    values = np.array([-2.0, 0.0, 0.5, 0.0, 2.0, 0.1])
    shown = highlighted_html(Explanation(text, placed.words, placed.spans, values, 0.7, EXACT))
    marks = re.findall(
        r'<mark class="word (\w+)"[^>]*rgba\([\d, ]+, ([\d.]+)\)[^>]*>(\w+)</mark>', shown
    )
    assert [(kind, word) for kind, _, word in marks] == [
        ("negative", "awful"), ("positive", "fine"), ("positive", "superb"), ("positive", "cast")
    ]  # fmt: skip
    alphas = {word: float(alpha) for _, alpha, word in marks}
    assert alphas["awful"] == alphas["superb"] > alphas["fine"] > alphas["cast"]


def test_words_that_cannot_be_placed_are_shown_cleaned():
    explanation = Explanation("x", ["good", "film"], None, np.array([1.0, -1.0]), 0.5, EXACT)
    assert _shown_text(highlighted_html(explanation)) == "good film"


def test_top_words_each_way_strongest_first():
    explanation = Explanation(
        "", ["good", "bad", "good", "dull", "plot"], None,
        np.array([0.5, -1.0, 0.25, -0.5, 0.0]), 0.4, LEAVE_ONE_OUT,
    )  # fmt: skip
    assert explanation.unit == "probability"
    assert explanation.top_words(5) == ([("good", 0.75)], [("bad", -1.0), ("dull", -0.5)])
    assert explanation.top_words(1)[1] == [("bad", -1.0)]


def test_a_notebook_shows_the_probability_the_top_words_and_the_marked_review():
    shown = HighlightedReview(_explained(MARKUP["script"]))._repr_html_()
    assert "P(positive) = 0.500" in shown and "<script>" not in shown
    assert "&#60;script&#62;" in shown


def test_escape_text_leaves_nothing_to_read_as_markup():
    assert escape_text("<b>*x*</b> $1 'a' &amp;") == (
        "&#60;b&#62;&#42;x&#42;&#60;/b&#62; &#36;1 &#39;a&#39; &#38;amp;"
    )
    assert html.unescape(escape_text(MARKUP["link"])) == MARKUP["link"]
