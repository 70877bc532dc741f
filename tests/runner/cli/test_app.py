"""``python -m runner app``: Streamlit's options (headless, no usage statistics, no file
watcher, the base path), and a model that cannot be loaded as one line and exit 2 before the
server starts; the page served under a base path, its health and its script there."""

from __future__ import annotations

import os
import shutil
import urllib.request

import pytest

from runner.cli import app as app_cli
from runner.cli.main import build_parser
from tests.support.page_server import PageServer
from tests.support.runner_process import ROOT, run_runner


def test_streamlit_runs_headless_without_statistics_or_watcher_under_the_base_path():
    options = app_cli.streamlit_options(8600, "0.0.0.0", "/proxy/abc/")
    assert options["server.headless"] is True
    assert options["browser.gatherUsageStats"] is False
    assert options["server.fileWatcherType"] == "none"
    assert (options["server.port"], options["server.address"]) == (8600, "0.0.0.0")
    assert options["server.baseUrlPath"] == "proxy/abc"
    assert "server.address" not in app_cli.streamlit_options(8501)
    assert app_cli.page_script().is_file() and app_cli.page_script().parent.name == "app"


def test_the_defaults_are_the_champion_and_streamlits_port():
    args = build_parser().parse_args(["app"])
    assert (args.model, args.port, args.base_url_path) == (
        "models:/imdb-sentiment@champion",
        8501,
        "",
    )


def _env(tmp_path) -> dict[str, str]:
    """This environment less MLflow's, the project's files (its store, logs) under tmp_path."""
    if not (tmp_path / "conf").exists():
        shutil.copytree(ROOT / "conf", tmp_path / "conf")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PROJECT_ROOT=str(tmp_path), LOG_DIR=str(tmp_path / "logs"))
    return env


def test_a_port_that_is_none_is_one_line_and_exit_2(tmp_path):
    result = run_runner(["app", "--port", "0"], _env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --port: 0 is not a port: pass 1 to 65535"


@pytest.mark.slow  # the command imports TensorFlow before it looks for the model
@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("{tmp}/missing.keras", "missing.keras"),
        ("models:/imdb-sentiment@champion", "no registered model 'imdb-sentiment'"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path, model, said):
    result = run_runner(["app", "--model", model.format(tmp=tmp_path)], _env(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], lines


@pytest.mark.slow  # a model and the page's server
def test_the_page_answers_under_its_base_path(trained_model, tmp_path):
    path = tmp_path / "model.keras"
    trained_model.save(path)
    env = _env(tmp_path)
    with PageServer(
        str(path), env=env, log=tmp_path / "page.log", base_url_path="svc/page"
    ) as page:
        assert page.url.endswith("/svc/page/")
        with urllib.request.urlopen(page.url, timeout=10) as answer:
            assert answer.status == 200 and b'<div id="root"' in answer.read()
        log = (tmp_path / "page.log").read_text()
    assert f"loaded from {path}" in log
    assert "gather usage statistics" not in log.lower()
