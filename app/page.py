"""The review page (Streamlit runs this file; ``python -m runner app`` starts it): a review
in, the model's probability and label out, and why: its words marked by contribution and the
top words each way; which model answers; a file of reviews scored and downloaded.

A review is text, never markup: it is shown escaped (:mod:`lib.model.explanation`), and
every message that quotes the visitor's input escapes it too. Bad input is a message on the
page, never a traceback.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import streamlit as st

from app import state, uploads
from app.state import PageModel
from lib.core.errors import UserError
from lib.model.explanation import Explanation, escape_text, highlighted_html

MAX_REVIEW_CHARS = 20_000
TOP_WORDS = 8
EXAMPLES = {
    "A positive review": (
        "A wonderful, moving film.<br /><br />The acting is superb and the story brilliant: "
        "I loved every minute of it."
    ),
    "A negative review": (
        "Dull plot and awful acting: a waste of time. The worst film I have seen this year, "
        "boring from start to end."
    ),
}


def _message(show: Callable[[str], object], text: str) -> None:
    """A message (``st.error``, ...) that shows ``text`` as written: Markdown renders none of it."""
    show(escape_text(text))


def check_review(text: str) -> str | None:
    """What is wrong with a review, one line, or None when it can be scored."""
    if not text.strip():
        return "The review is empty: paste or type a review, or pick an example."
    if len(text) > MAX_REVIEW_CHARS:
        return (
            f"The review has {len(text):,} characters, over the limit of {MAX_REVIEW_CHARS:,}: "
            "shorten it, or score it as a file below."
        )
    return None


def _use_example(text: str) -> None:
    st.session_state["review"] = text
    st.session_state.pop("explained", None)


def _model_panel(model: PageModel) -> None:
    info = model.info
    rows = [("Model", info.name), ("Version", info.version)]
    if info.alias:
        rows.append(("Alias", info.alias))
    if info.trained:
        rows.append(("Trained", info.trained))
    if info.test_accuracy is not None:
        rows.append(("Test accuracy", f"{info.test_accuracy:.4f}"))
    body = "".join(f"<tr><th>{escape_text(k)}</th><td>{escape_text(v)}</td></tr>" for k, v in rows)
    if info.run_id:
        run = escape_text(info.run_id[:12])  # the start says which; the link opens it
        if info.run_url:
            run = f'<a href="{html.escape(info.run_url, quote=True)}" target="_blank">{run}</a>'
        body += f"<tr><th>MLflow run</th><td>{run}</td></tr>"
    st.sidebar.html(f'<table class="model-info">{body}</table>')
    if "moved" in st.session_state:
        _message(st.sidebar.success, st.session_state.pop("moved"))
    if info.alias and st.sidebar.button("Load the alias again", key="reload"):
        try:
            moved, model = state.reload_if_moved()
        except UserError as exc:
            _message(st.sidebar.error, str(exc))
            return
        if moved:  # said after the page runs again with the new version
            st.session_state["moved"] = f"The alias now names version {model.info.version}."
            st.rerun()
        else:
            _message(st.sidebar.info, f"The alias still names version {info.version}.")


def _verdict(explained: Explanation) -> None:
    label = "positive" if explained.probability >= 0.5 else "negative"
    st.html(
        f'<div class="verdict {label}" style="font-size: 1.4rem">'
        f'<span class="label">{label}</span> &middot; P(positive) = '
        f'<span class="probability">{explained.probability:.3f}</span></div>'
    )


def _why(explained: Explanation) -> None:
    st.subheader("Why")
    how = (
        "exact shares of the model's logit (with its bias they add up to it)"
        if explained.method == "exact"
        else "the change in P(positive) when the word is left out"
    )
    _message(st.caption, f"Green pushed towards positive, red towards negative; {how}.")
    st.html(highlighted_html(explained))
    positive, negative = explained.top_words(TOP_WORDS)
    left, right = st.columns(2)
    for column, title, words, kind in (
        (left, "Towards positive", positive, "positive"),
        (right, "Towards negative", negative, "negative"),
    ):
        items = "".join(
            f"<li><span class='word'>{escape_text(w)}</span> ({v:+.3f})</li>" for w, v in words
        )
        column.html(
            f'<div class="top-words {kind}"><strong>{title}</strong>'
            f"<ol>{items or '<li>none</li>'}</ol></div>"
        )


def _review_form(model: PageModel) -> None:
    st.write("Examples:")
    columns = st.columns(len(EXAMPLES))
    for column, (title, text) in zip(columns, EXAMPLES.items(), strict=True):
        column.button(title, on_click=_use_example, args=(text,))
    with st.form("review-form"):
        st.text_area("Review", key="review", height=180)
        submitted = st.form_submit_button("Score the review")
    if submitted:
        text = st.session_state.get("review", "")
        problem = check_review(text)
        if problem:
            st.session_state.pop("explained", None)
            _message(st.error, problem)
            return
        st.session_state["explained"] = model.explain(text)
    explained = st.session_state.get("explained")
    if explained is not None:
        _verdict(explained)
        _why(explained)


def _upload(model: PageModel) -> None:
    st.subheader("Score a file")
    st.caption(
        f"A .txt file (one review) or a .csv table with a text column, up to "
        f"{uploads.MAX_UPLOAD_MB} MB."
    )
    column = st.text_input("Text column of a .csv", value="text", key="text_column")
    uploaded = st.file_uploader("Reviews file", key="upload")
    if uploaded is None:
        return
    # Scored once per file, column and model: the page runs again on every click.
    key = (uploaded.file_id, column, model.info.version)
    if st.session_state.get("scored_key") != key:
        try:
            scored = uploads.score_upload(
                uploaded.name,
                uploaded.getvalue(),
                model.score,
                model_name=model.info.name,
                model_version=model.info.version,
                text_column=column,
            )
        except UserError as exc:
            st.session_state.pop("scored_key", None)
            _message(st.error, str(exc))
            return
        st.session_state["scored_key"], st.session_state["scored"] = key, scored
    scored = st.session_state["scored"]
    result = scored.result
    skipped = sum(result.skipped.values())
    st.html(
        f'<div class="upload-summary">{result.reviews} reviews scored: {result.positive} '
        f"positive, {result.reviews - result.positive} negative"
        + (f"; {skipped} skipped (empty or unreadable)" if skipped else "")
        + "</div>"
    )
    st.dataframe(scored.table.to_pandas(), hide_index=True)
    st.download_button(
        "Download the scores (CSV)", scored.csv, file_name="scores.csv", mime="text/csv"
    )


def main() -> None:
    """The page, top to bottom."""
    st.set_page_config(page_title="Review sentiment", layout="wide")
    st.title("Is this review positive?")
    try:
        model = state.current()
    except UserError as exc:  # the model named cannot be loaded (a page started alone)
        _message(st.error, str(exc))
        return
    _model_panel(model)
    _review_form(model)
    _upload(model)


main()
