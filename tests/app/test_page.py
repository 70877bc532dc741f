"""The review page in Chromium (Playwright, Debian's chromium), as a person uses it: served by
``python -m runner app`` with its default model, the champion of a throwaway store. A clearly
positive and a clearly negative review and their labels, their words marked, the model
panel, each markup case shown as written with nothing of it run, an upload scored and
downloaded, and each bad input said on the page. A screenshot of each state is kept in
test-artifacts/page/."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.support import page_browser
from tests.support.page_browser import open_page, shot, submit, upload

pytestmark = pytest.mark.slow  # a model, the page's server and a browser

POSITIVE = "A wonderful film: superb, brilliant and enjoyable. I loved it, a masterpiece!"
NEGATIVE = "An awful, boring film. The worst, a waste of time: dull and horrible."
MARKUP = {
    "line-breaks": "Great fun.<br /><br />I loved it",
    "script": "Great <script>window.__ran = 'script'</script> film",
    "image": 'Awful <img src="x" onerror="window.__ran = \'img\'"> film',
    "bold": "**bold** and __great__ film",
    "dollars": "It cost $5 and $10 to see, wonderful",
}


@pytest.fixture(scope="module")
def page_url(trained_model, tmp_path_factory):
    project = tmp_path_factory.mktemp("page")
    store = page_browser.register_champion(project, trained_model)
    yield from (server.url for server in page_browser.serve_champion(project, store))


@pytest.fixture(scope="module")
def page(page_url):
    yield from page_browser.chromium_page()


@pytest.mark.parametrize(("text", "label"), [(POSITIVE, "positive"), (NEGATIVE, "negative")])
def test_a_clear_review_gets_its_label_and_its_words_marked(page, page_url, text, label):
    open_page(page, page_url)
    submit(page, text)
    assert page.locator(".verdict .label").inner_text() == label
    probability = float(page.locator(".verdict .probability").inner_text())
    assert (probability > 0.5) == (label == "positive")
    assert page.locator(".review").inner_text() == text
    marked = page.locator(f".review mark.{label}")
    assert marked.count() > 0
    top = page.locator(f".top-words.{label} .word").all_inner_texts()
    assert top and set(top) <= set(re.findall(r"\w+", text.lower()))
    shot(page, label)


def test_the_model_panel_says_which_model_answers(page, page_url):
    open_page(page, page_url)
    panel = page.locator("table.model-info").inner_text()
    for expected in ("imdb-sentiment", "Version\t1", "champion", "0.8750", "MLflow run"):
        assert expected in panel, panel
    page.get_by_role("button", name="Load the alias again").click()
    page.get_by_text("The alias still names version 1.").wait_for()


@pytest.mark.parametrize("case", sorted(MARKUP))
def test_markup_in_a_review_shows_as_written_and_nothing_of_it_runs(page, page_url, case):
    open_page(page, page_url)
    text = MARKUP[case]
    submit(page, text)
    assert page.locator(".review").inner_text() == text
    assert page.locator(".review script, .review img, .review b, .review strong").count() == 0
    assert page.locator(".review .katex").count() == 0  # no math either
    assert page.evaluate("window.__ran") is None and page.dialogs == []
    shot(page, f"markup-{case}")


def test_an_upload_is_scored_shown_and_downloaded(page, page_url):
    open_page(page, page_url)
    rows = io.StringIO()
    csv.writer(rows).writerows([["id", "text"], [1, POSITIVE], [2, NEGATIVE], [3, ""]])
    csv.writer(rows).writerow([4, "<b>**x**</b> $5"])
    table = rows.getvalue().encode()
    upload(page, "reviews.csv", table)
    assert page.locator(page_browser.ALERT).count() == 0, _error(page)
    summary = page.locator(".upload-summary").inner_text()
    assert summary.startswith("3 reviews scored: ") and "1 skipped" in summary
    page.locator('[data-testid="stDataFrame"]').wait_for()  # the table, drawn in a canvas
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the scores (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [r["label"] for r in rows][:2] == ["1", "0"]
    assert rows[2]["text"] == "<b>**x**</b> $5"
    assert {r["model_name"] for r in rows} == {"imdb-sentiment"}
    shot(page, "upload")


def _error(page) -> str:
    return page.locator(page_browser.ALERT).first.inner_text()


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("empty", "   \n ", "The review is empty: paste or type a review"),
        ("too-long", "word " * 4001, "over the limit of 20,000"),
    ],
)
def test_a_review_it_cannot_score_is_said_on_the_page(page, page_url, name, text, said):
    open_page(page, page_url)
    submit(page, text, answered=False)
    assert said in _error(page)
    assert page.locator(".verdict").count() == 0
    assert page.get_by_text("Traceback").count() == 0
    shot(page, f"bad-{name}")


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("big.csv", b"text\n" + b"x" * (2 * 1024 * 1024), "over the limit of 2 MB"),
        ("review.pdf", b"%PDF-1.4", "not a .txt review or a .csv table"),
        ("columns.csv", b"review,stars\ngreat,5\n", "'text' is not a column of columns.csv"),
        ("blank.txt", b"  \n", "no review to score"),
    ],
)
def test_an_upload_it_cannot_score_is_said_on_the_page(page, page_url, name, data, said):
    open_page(page, page_url)
    upload(page, name, data)
    assert said in _error(page), _error(page)
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    assert page.get_by_text("Traceback").count() == 0
    shot(page, f"bad-upload-{name.replace('.', '-')}")
