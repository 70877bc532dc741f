"""The notebooks as the design card's first user runs them: in JupyterLab, in a real browser.

``jupyter lab`` from the venv serves a copy of the project (its notebooks and conf, with
small data at the default data paths, ``PROJECT_ROOT`` pointing at it so that nothing lands
in the real checkout) on 127.0.0.1 with a token; Playwright drives Debian's chromium (no
browser download is possible here) through the menu's Run All, as a user does, for prep,
train and tune in turn. Each finished notebook is checked (every code cell ran, no error,
no stderr, the plots shown as images, the tables rendered, the last cells' values there)
and kept as a full-page screenshot in ``test-artifacts/jupyterlab/<notebook>.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import scrapbook as sb

from tests.support.browser import launch_chromium
from tests.support.datagen import make_raw_dir
from tests.support.tf_lines import KNOWN_TF_LINES, json_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "jupyterlab"
# JupyterLab's user settings in the isolated settings folder: no news or update checks
# (no network here), every cell attached to the page (JupyterLab 4 otherwise leaves cells
# outside the viewport out of the DOM, and of the screenshot).
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # The notebooks name their kernel (python3): start it without asking.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,
    },
}
ACTIVE_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
RUN_TIMEOUT_S = {"prep": 120, "train": 240, "tune": 480}
# What each notebook must show once run: images (plots), HTML tables, scraps of its last
# cells.
EXPECTED = {
    "prep": {"images": 0, "tables": 4, "scraps": {"rows", "fingerprint", "skipped"}},
    "train": {"images": 2, "tables": 2, "scraps": {"val_accuracy", "test_accuracy", "model_uri"}},
    "tune": {"images": 2, "tables": 4, "scraps": {"best_trials", "n_complete", "study_name"}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project whose default data paths hold small data."""
    copy = tmp_path_factory.mktemp("jupyterlab") / "project"
    copy.mkdir()
    for folder in ("notebooks", "conf"):
        shutil.copytree(ROOT / folder, copy / folder)
    shutil.copy(ROOT / "requirements.lock", copy)  # what a run records its packages against
    make_raw_dir(copy / "data" / "raw" / "aclImdb", per_label=60, words=40)
    return copy


@pytest.fixture(scope="module")
def jupyter(project, tmp_path_factory) -> Iterator[str]:
    """``jupyter lab`` serving ``project``; yields its URL with the token."""
    home = tmp_path_factory.mktemp("jupyter-home")
    settings = home / "settings"
    for name, value in USER_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value), encoding="utf-8")
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "TF_", "JUPYTER", "POLYAXON", "RUNNER_"))
    }
    env.update(
        PROJECT_ROOT=str(project),
        LOG_DIR=str(project / "logs"),
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    log = (ARTIFACTS / "jupyter.log").open("w") if _artifacts() else subprocess.DEVNULL
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("jupyter")),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={project}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # the default asks PyPI
            *(["--allow-root"] if os.geteuid() == 0 else []),  # as in a CI container
        ],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its kernels too are stopped with its process group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, token, server)
        # ?reset: a fresh workspace, with no tab of the notebook opened before
        yield f"{url}/lab/tree/notebooks/{{name}}.ipynb?reset&token={token}"
    finally:
        _stop(server)
        if log is not subprocess.DEVNULL:
            log.close()


def _artifacts() -> bool:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return True


def _wait_for(url: str, token: str, server: subprocess.Popen, timeout: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}; see {ARTIFACTS}/jupyter.log")
        try:
            if requests.get(f"{url}/api/status", params={"token": token}, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer at {url} within {timeout:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (the server and its kernels): SIGTERM, then SIGKILL."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _run_all(page, url: str, timeout_s: float) -> None:
    """Open the notebook, wait for its kernel, Run All from the menu, wait until every code
    cell has run and the kernel is idle, then save it."""
    page.goto(url)
    page.wait_for_selector(f"{ACTIVE_PANEL} .jp-Cell", timeout=60_000)
    # The status bar says Idle once the kernel has started and connected.
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + timeout_s
    stalled_since, runs = None, 0
    while time.monotonic() < deadline:
        prompts = _prompts(page)
        if all(p.strip("[]:").isdigit() for p in prompts) and _kernel_status(page) == "idle":
            break
        # Run All, and again if nothing runs or waits while cells have not run: a click
        # (or a run) that comes while JupyterLab still connects the kernel is lost.
        idle = "[*]:" not in prompts and _kernel_status(page) == "idle"
        stalled_since = (stalled_since or time.monotonic()) if idle else None
        if runs == 0 or (runs < 4 and stalled_since and time.monotonic() - stalled_since > 5):
            _menu(page, "Run", "Run All Cells")
            runs, stalled_since = runs + 1, None
        time.sleep(1)
    else:
        page.screenshot(path=str(ARTIFACTS / f"{Path(url.split('?')[0]).stem}-unfinished.png"))
        pytest.fail(f"the notebook did not finish within {timeout_s:.0f} s: prompts {prompts}")
    _menu(page, "File", "Save Notebook")


def _saved(path: Path, timeout_s: float = 30) -> nbformat.NotebookNode:
    """The notebook as JupyterLab saved it, once every code cell in the file has run."""
    deadline = time.monotonic() + timeout_s
    while True:
        nb = nbformat.read(path, as_version=4)
        if all(c.execution_count for c in nb.cells if c.cell_type == "code"):
            return nb
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name}: not saved with every code cell run")
        time.sleep(0.5)


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def _prompts(page) -> list[str]:
    """The code cells' prompts: ``[ ]:`` not run, ``[*]:`` queued or running, ``[3]:`` run."""
    prompts = page.locator(f"{ACTIVE_PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return [p.strip() for p in prompts]


def _kernel_status(page) -> str:
    return page.evaluate(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const node = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return node ? node.getAttribute('data-status') || '' : '';
        }"""
    )


def _screenshot(page, name: str) -> Path:
    """The whole notebook: the viewport grown to its height (JupyterLab scrolls inside
    its own panel, so a page's full-page screenshot would stop at the window)."""
    height = page.evaluate(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const outer = panel.querySelector('.jp-WindowedPanel-outer') || panel;
            return outer.scrollHeight;
        }"""
    )
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 300, 30_000)})
    page.evaluate(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            (panel.querySelector('.jp-WindowedPanel-outer') || panel).scrollTop = 0;
        }"""
    )
    page.wait_for_timeout(1000)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.parametrize("name", ["prep", "train", "tune"])
def test_the_notebook_runs_all_in_jupyterlab_and_shows_its_results(name, project, jupyter, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        _run_all(page, jupyter.format(name=name), RUN_TIMEOUT_S[name])
        shot = _screenshot(page, name)
        expected = EXPECTED[name]
        panel = page.locator(ACTIVE_PANEL)
        images = panel.locator(".jp-OutputArea-output img").count()
        tables = panel.locator(".jp-OutputArea-output table").count()
        shown = panel.locator(".jp-OutputArea-output").all_inner_texts()
    finally:
        page.close()
    assert shot.stat().st_size > 10_000
    assert images >= expected["images"], f"{name}: {images} plots shown"
    assert tables >= expected["tables"], f"{name}: {tables} tables rendered"
    assert not any("Traceback" in text for text in shown)

    saved = _saved(project / "notebooks" / f"{name}.ipynb")
    code = [c for c in saved.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    noise = [t for t in stderr if not any(known in t for known in KNOWN_TF_LINES)]
    assert noise == [], f"{name} shows stderr: {noise}"
    texts = [o.get("text", "") for o in outputs] + [
        str(o.get("data", {}).get("text/plain", "")) for o in outputs
    ]
    assert not any(json_lines(t) for t in texts), f"{name} shows JSON log lines"
    scraps = sb.read_notebook(str(project / "notebooks" / f"{name}.ipynb")).scraps
    assert expected["scraps"] <= set(scraps), f"{name}: scraps {sorted(scraps)}"
    _check_values(name, scraps, shown)


def _check_values(name: str, scraps, shown: list[str]) -> None:
    """The last cells' values: what the notebook glued, and what it printed."""
    if name == "prep":
        rows = scraps["rows"].data
        assert {split: rows[split]["total"] for split in rows} == {"train": 120, "test": 120}
        assert any("written to data/processed" in text for text in shown)
    elif name == "train":
        assert 0.5 <= scraps["val_accuracy"].data <= 1.0
        assert scraps["model_uri"].data.startswith(("runs:/", "models:/"))
        assert any(scraps["model_uri"].data in text for text in shown)
    else:
        assert scraps["n_complete"].data == 3  # conf/hptuning.yml's n_trials
        assert any("this process ran trials" in text for text in shown)


def test_a_progress_bar_renders_as_a_widget(project, jupyter, browser):
    """tqdm.auto (lib.data.fetch's bar) in JupyterLab: an ipywidgets bar, not text or a warning."""
    code = "from tqdm.auto import tqdm\n\nfor _ in tqdm(range(3), desc='demo'):\n    pass"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, project / "notebooks" / "bar.ipynb")
    page = browser.new_page(viewport={"width": 1280, "height": 600})
    try:
        _run_all(page, jupyter.format(name="bar"), 60)
        bar = page.locator(f"{ACTIVE_PANEL} .jp-OutputArea-output .widget-hprogress .progress-bar")
        bar.first.wait_for(timeout=20_000)
        shown = " ".join(page.locator(f"{ACTIVE_PANEL} .jp-OutputArea-output").all_inner_texts())
        page.screenshot(path=str(ARTIFACTS / "progress-bar.png"))
    finally:
        page.close()
    assert "demo" in shown and "3/3" in shown
    assert "IProgress" not in shown
