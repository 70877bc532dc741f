"""``python -m runner status``: each stage, up to date or why not, its last run, its MLflow
run and when it ran; read from the stamps and the files alone (no MLflow, TensorFlow or
papermill import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.pipeline.plan import State
from tests.support.pipeline_project import (
    prepared_project,
    project_env,
    runner_in,
    stamp_as_if_run,
    without_heavy_imports,
)

TRAIN = {"train": {"epochs": 1}}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    root = prepared_project(tmp_path / "project")
    stamp_as_if_run("prep", TRAIN)
    stamp_as_if_run("train", TRAIN, mlflow_run_id="0123abcd")
    return root


def _status(root: Path, tmp_path: Path, *argv: str) -> list[str]:
    env = project_env(root, {"PYTHONPATH": without_heavy_imports(tmp_path / "blocked")})
    result = runner_in(root, ["status", *argv], env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_status_shows_each_stage_its_last_run_and_mlflow_run(project, tmp_path):
    lines = _status(project, tmp_path, "-p", "train.epochs", "1", "--stages", "prep,train,tune")
    assert lines == [
        "prep: up to date",
        "  last run: runs/20261201T090559Z-prep (finished 2026-12-01T09:06:20+00:00, 20.5 s)",
        "  processed data set: data/processed",
        "train: up to date",
        "  last run: runs/20261201T090559Z-train (finished 2026-12-01T09:06:20+00:00, 20.5 s)",
        "  model: models/latest/model.keras",
        "  MLflow run 0123abcd in sqlite:///mlflow.db",
        "  open it: mlflow ui --backend-store-uri sqlite:///mlflow.db, "
        "then http://127.0.0.1:5000/#/experiments/7/runs/0123abcd",
        "tune: outdated: no earlier successful run",
        "  last run: none",
    ]


def test_status_says_why_a_stage_is_outdated(project, tmp_path):
    (project / "models" / "latest" / "model.keras").unlink()
    State().stamp_path("prep").write_text("{damaged")
    lines = _status(project, tmp_path, "-p", "train.epochs", "3")
    assert lines[0].startswith("prep: outdated: stamp unreadable (not valid JSON")
    assert lines[1] == "  last run: none"
    train = lines.index(
        "train: outdated: parameters changed: epochs 1 -> 3; "
        "model models/latest/model.keras is gone"
    )
    assert lines[train + 1].startswith("  last run: runs/20261201T090559Z-train")


def test_status_into_a_closed_pipe_ends_quietly(project, tmp_path):
    # As `runner status | head -4` once head has gone: the reader closed before a write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = project_env(project, {"PYTHONPATH": without_heavy_imports(tmp_path / "blocked")})
    try:
        result = subprocess.run(
            [sys.executable, "-m", "runner", "status"],
            cwd=project,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.stderr == "" and result.returncode == 141  # as SIGPIPE would end it
