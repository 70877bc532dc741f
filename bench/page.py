"""Benchmark: the review page, from a one-review form submitted to its label shown, and the
explanation of a 1,000-word review in process.

Usage: python bench/page.py ../shared/data/aclImdb_v1.tar.gz [--per-label 1500] [--tries 30]

Takes ``--per-label`` reviews of each label from the archive (bench/serve.py's subset, read
from the stream), prepares them through lib, trains the default model (``nbngram``) for
``--epochs``, logs and registers it as the champion of a throwaway local store (as
bench/serve.py does). Then:

* ``explain_ms``: the median over ``--explains`` calls (after three warm-up calls) of
  :class:`lib.model.explain.Explainer` on one review of ``--words`` words (test reviews
  joined), the probability included: what the page does for a submitted review;
* ``page_p50_ms``: ``python -m runner app`` serving the champion (tests/support/page_server.py),
  Debian's chromium (Playwright) on it; after three warm-up submissions, ``--tries`` test
  reviews submitted one after another, each timed from the click on the submit button to the
  page showing that review's label and marked words: the p50 (and p90) of those.

Last line: ``page_p50_ms=... explain_ms=...`` (goals: 300 ms and 30 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve import MODEL_NAME, registered_champion  # noqa: E402

WAIT_FOR_REVIEW = """([text]) => {
  const review = document.querySelector('.review');
  return review !== null && review.textContent === text
    && document.querySelector('.verdict .label') !== null;
}"""


def long_review(reviews: list[str], words: int) -> str:
    """Test reviews joined until ``words`` words."""
    found: list[str] = []
    for review in reviews:
        found.extend(review.split())
        if len(found) >= words:
            break
    return " ".join(found[:words])


def time_explain(model, text: str, calls: int) -> float:
    """Median ms of one explanation of ``text`` with ``model``."""
    from lib.model.explain import Explainer

    explainer = Explainer(model)
    for _ in range(3):
        explainer(text)
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        explainer(text)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def time_page(url: str, reviews: list[str], tries: int) -> np.ndarray:
    """ms from each submission to its label shown, ``tries`` of them after three warm-ups."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium

    seconds = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            box = page.get_by_label("Review", exact=True)
            button = page.get_by_role("button", name="Score the review")
            button.wait_for()
            for i in range(tries + 3):
                text = reviews[i % len(reviews)] + f" ({i})"  # never the one shown already
                box.fill(text)
                started = time.perf_counter()
                button.click()
                page.wait_for_function(WAIT_FOR_REVIEW, arg=[text], polling="raf")
                if i >= 3:
                    seconds.append(time.perf_counter() - started)
        finally:
            browser.close()
    return np.array(seconds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--per-label", type=int, default=1500, help="reviews per split/label")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--tries", type=int, default=30, help="reviews submitted on the page")
    parser.add_argument("--explains", type=int, default=30, help="explanations timed")
    parser.add_argument("--words", type=int, default=1000, help="words of the explained review")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tests.support.page_server import PageServer

    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        tmp = Path(tmp)
        store, model, reviews = registered_champion(args.archive, tmp, args.per_label, args.epochs)
        text = long_review(reviews, args.words)
        explain_ms = time_explain(model, text, args.explains)
        print(f"explained a {len(text.split())}-word review in {explain_ms:.1f} ms", flush=True)
        short = [r for r in reviews if len(r) < 2000][: args.tries + 3] or reviews
        env = {"MLFLOW_TRACKING_URI": store, "PROJECT_ROOT": str(tmp)}
        uri = f"models:/{MODEL_NAME}@champion"
        with PageServer(uri, env=env, log=tmp / "page.log") as server:
            print(f"page ready in {server.startup_s:.1f} s", flush=True)
            page_ms = time_page(server.url, short, args.tries)
    p50, p90 = np.percentile(page_ms, [50, 90])
    print(
        f"submit to label shown: p50 {p50:.0f} ms, p90 {p90:.0f} ms, mean {page_ms.mean():.0f} "
        f"ms over {len(page_ms)}",
        flush=True,
    )
    print(f"page_p50_ms={p50:.1f} explain_ms={explain_ms:.1f}")


if __name__ == "__main__":
    main()
