"""A train run in the MLflow UI, as a team member opens it: the run page of the team server
(basic auth, artifacts in the GCS emulator) in a real browser, showing the executed notebook
that the runner logged. Kept as a screenshot in ``test-artifacts/mlflow/run-page.png``
(docs/tracking.md shows it: ``scripts/docs_screenshots.sh``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
import pytest
import scrapbook as sb

from lib.data import prep
from tests.support.browser import launch_chromium
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import run_runner

pytestmark = [pytest.mark.slow, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "mlflow"
# The train notebook's title: its HTML copy is shown once this is in the preview.
TITLE = "Training: a Keras sentiment model, tracked in MLflow"


def test_the_run_page_shows_the_logged_notebook(tmp_path, mlflow_tracking_env, gcs_env):
    data = tmp_path / "processed"
    prep.prepare([make_raw_dir(tmp_path / "raw", per_label=40, words=40)], data)
    name = f"ui-{uuid.uuid4().hex[:8]}"
    args = ["train", "-p", "data_path", str(data), "-p", "model_dir", str(tmp_path / "model")]
    args += ["-p", "epochs", "2", "-p", "bs", "16", "-p", "mlflow_exp_name", name]
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = run_runner([*args, "--output-dir", str(tmp_path / "run")], env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps["mlflow_run_id"].data
    experiment_id = mlflow.MlflowClient(mlflow_tracking_env.url).get_run(run_id).info.experiment_id

    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "run-page.png"
    url = f"{mlflow_tracking_env.url}/#/experiments/{experiment_id}/runs/{run_id}"
    login = {"username": mlflow_tracking_env.username, "password": mlflow_tracking_env.password}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, http_credentials=login)
        try:
            page.goto(f"{url}/artifacts/notebook/train.html")
            folder = page.get_by_text("notebook", exact=True).first
            folder.wait_for(timeout=90_000)
            html_file = page.get_by_text("train.html", exact=True).first
            try:  # the path in the URL may have opened the folder already
                html_file.wait_for(timeout=5_000)
            except PlaywrightTimeoutError:
                folder.click()
            html_file.click()
            preview = page.frame_locator("iframe").first.get_by_text(TITLE).first
            preview.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # the preview's images
            page.screenshot(path=str(shot))
            listed = page.get_by_text("train.ipynb", exact=True).count()
        except PlaywrightTimeoutError:
            page.screenshot(path=str(ARTIFACTS / "run-page-unfinished.png"))
            raise
        finally:
            browser.close()
    assert listed >= 1, "the artifact tree does not list notebook/train.ipynb"
    assert shot.stat().st_size > 10_000
