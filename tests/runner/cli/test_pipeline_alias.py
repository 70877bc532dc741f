"""``python -m runner pipeline`` and ``status`` with infer scoring a registered model by alias
on a real MLflow server with basic auth: the version the alias names is what decides; a moved
alias outdates infer; with the server stopped, ``status`` says so in infer's line (exit 0)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import mlflow
import pytest

from tests.support.datagen import make_raw_dir
from tests.support.pipeline_project import FAST, copy_project, project_env, runner_in
from tools import tracking_stack

pytestmark = pytest.mark.slow  # a server of its own (it is stopped), prep, train and infer

ALIAS = "models:/imdb-sentiment@champion"
INFER = ["--stages", "infer", "-r", "infer.model_uri", ALIAS]


def _line(out: str, start: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(start))


def test_infer_follows_the_version_its_alias_names_and_status_says_when_the_store_is_gone(
    tmp_path, monkeypatch
):
    root = copy_project(tmp_path / "project")
    make_raw_dir(root / "data" / "new-reviews", per_label=2, seed=3, words=12)
    server = tracking_stack.start_mlflow_server(
        tmp_path / "server", password=secrets.token_urlsafe(24)
    )
    try:
        env = project_env(root, server.env())
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        trained = runner_in(root, ["pipeline", *FAST, "-p", "train.register_model", "True"], env)
        assert trained.returncode == 0, trained.stderr[-3000:]
        client = mlflow.MlflowClient(server.url, registry_uri=server.url)
        first = client.get_model_version("imdb-sentiment", "1")
        client.create_model_version("imdb-sentiment", first.source, run_id=first.run_id)
        client.set_registered_model_alias("imdb-sentiment", "champion", "1")

        scored = runner_in(root, ["pipeline", *INFER], env)
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert "infer: no earlier successful run" in scored.stdout.splitlines()
        rows = (root / "data" / "scores.jsonl").read_text().splitlines()
        assert {json.loads(row)["model_version"] for row in rows} == {"1"}
        again = runner_in(root, ["pipeline", *INFER], env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert ", model version 1, notebook" in _line(again.stdout, "infer: up to date: ")

        client.set_registered_model_alias("imdb-sentiment", "champion", "2")
        moved = runner_in(root, ["status", *INFER], env)
        assert moved.returncode == 0, moved.stderr[-3000:]
        assert _line(moved.stdout, "infer: ") == (
            "infer: outdated: model changed: version 1 -> version 2"
        )
    finally:
        server.stop()
    gone = runner_in(root, ["status", *INFER], env, timeout=120)
    assert gone.returncode == 0, gone.stderr[-3000:]
    assert _line(gone.stdout, "infer: ").startswith(
        f"infer: cannot tell whether it is up to date: cannot resolve {ALIAS}: cannot reach "
        f"the MLflow tracking server at {server.url}"
    )
    assert _line(gone.stdout, "  last run: ").startswith("  last run: runs/")
    assert Path(root / "data" / "scores.jsonl").is_file()
