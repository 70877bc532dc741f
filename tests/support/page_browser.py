"""The review page served for a browser test: a tiny model registered as the champion in a
throwaway store, ``python -m runner app`` serving it with its defaults, Chromium on it; and
the page's moves (a review submitted, a file uploaded) as a person makes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import launch_chromium
from tests.support.page_server import PageServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "page"
TIMEOUT_MS = 60_000


def register_champion(project: Path, model) -> str:
    """``model`` logged and registered as imdb-sentiment version 1, champion, in a SQLite
    store under ``project``; the store's URI."""
    from lib.tracking import registry
    from tests.support.logged_models import log_model

    store = f"sqlite:///{project / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROJECT_ROOT", str(project))
        patch.setenv("MLFLOW_TRACKING_URI", store)
        uri = log_model(store, model, params={"model_name": "nbngram"})
        version = registry.register(uri, "imdb-sentiment", {"test_accuracy": "0.875"}, store)
        registry.set_alias("imdb-sentiment", registry.CHAMPION, version.version, store)
    return store


def serve_champion(project: Path, store: str) -> Iterator[PageServer]:
    """The page with its default model (the champion) on ``store``."""
    env = {"PROJECT_ROOT": str(project), "MLFLOW_TRACKING_URI": store}
    env["LOG_DIR"] = str(project / "logs")
    with PageServer(None, env=env, log=ARTIFACTS / "page.log") as server:
        yield server


def chromium_page() -> Iterator:
    """A new page of Debian's chromium; every dialog (an alert a review ran) recorded on
    ``page.dialogs`` and dismissed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.dialogs = []
            page.on(
                "dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss())
            )
            yield page
        finally:
            browser.close()


def open_page(page, url: str) -> None:
    """The page loaded and its form there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url)
    try:
        page.get_by_role("button", name="Score the review").wait_for(timeout=2 * TIMEOUT_MS)
    except PlaywrightTimeout:  # what the page shows instead, for whoever looks into it
        shot(page, "not-loaded")
        raise


SHOWN = """([selector, text]) => {
  const found = document.querySelector(selector);
  return found !== null && (text === null || found.textContent === text);
}"""
ALERT = '[data-testid="stAlert"]'


def submit(page, text: str, answered: bool = True) -> None:
    """``text`` typed in the review box and the form submitted; returns once the page shows
    that review explained (``answered``) or a message."""
    page.get_by_label("Review", exact=True).fill(text)
    page.get_by_role("button", name="Score the review").click()
    if answered:  # the review marked, then its top words: the last of what the page draws
        page.wait_for_function(SHOWN, arg=[".review", text])
        page.locator(".top-words.negative").wait_for()
    else:
        page.wait_for_function(SHOWN, arg=[ALERT, None])


def upload(page, name: str, data: bytes, mime: str = "text/csv") -> None:
    """A file given to the page's uploader; returns once its scores or a message show."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )
    page.wait_for_function(SHOWN, arg=[f".upload-summary, {ALERT}", None])


def shot(page, name: str) -> Path:
    """A full-page screenshot kept in test-artifacts/page/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
