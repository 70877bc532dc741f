"""A copy of the project (code, notebooks, configuration, pins) with small generated raw data,
for the pipeline's tests: its stamps, data, models and MLflow store stay in the copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("lib", "runner", "notebooks", "conf")
PINS = (
    "requirements.txt",
    "requirements-prep.txt",
    "requirements-train.txt",
    "requirements-prep.lock",
    "requirements.lock",
    "requirements-serve.lock",  # what a logged model records (lib.tracking.model_requirements)
    "pyproject.toml",
)
RAW = Path("data/raw/aclImdb")  # the prep notebook's default raw_dirs
# Small and fast: the train parameters of tests/notebooks/test_train.py, one epoch.
FAST = ["-p", "train.epochs", "1", "-p", "train.bs", "16"]


def copy_project(dest: Path, per_label: int = 20) -> Path:
    """``dest`` holding a copy of the project and raw reviews at ``data/raw/aclImdb``."""
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for name in COPIED:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in PINS:
        shutil.copy2(ROOT / name, dest / name)
    make_raw_dir(dest / RAW, per_label=per_label, words=20)
    return dest


def prepared_project(dest: Path) -> Path:
    """A small project copy with its data prepared and a model file in place (no stage run):
    what the stamp and status tests decide on. Call with PROJECT_ROOT set to ``dest``."""
    from lib.data import prep

    root = copy_project(dest, per_label=4)
    prep.prepare([root / RAW], root / "data" / "processed")
    (root / "models" / "latest").mkdir(parents=True)
    (root / "models" / "latest" / "model.keras").write_bytes(b"a model")
    return root


def project_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env.update(LOG_DIR=str(root / "logs"), TF_CPP_MIN_LOG_LEVEL="2", **(extra or {}))
    return env


def runner_in(
    root: Path, args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m runner ARGS`` in the copy (its own runner and lib)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=root,
        env=dict(env or project_env(root)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_runner(root: Path, args: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        cwd=root,
        env=project_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


HEAVY = ("mlflow", "tensorflow", "papermill", "keras", "nbclient", "scrapbook")


def without_heavy_imports(folder: Path) -> str:
    """A folder for PYTHONPATH in which importing MLflow, TensorFlow, papermill, ... fails."""
    for name in HEAVY:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} must not be imported to decide')\n"
        )
    return str(folder)


def stamp_as_if_run(
    stage: str, given: dict, mlflow_run_id: str | None = None, make: Callable[[], Any] = list
) -> None:
    """The stamp a successful run of ``stage`` would write now (in $PROJECT_ROOT), without
    running it: run folder ``runs/20261201T090559Z-<stage>``, model ``models/latest``.
    ``make`` writes what the run would leave (infer's scores), once it is planned."""
    from runner.pipeline import digests
    from runner.pipeline.plan import State, judge, plan, products_of
    from runner.pipeline.stamps import Stamp, write_stamp

    state, files = State(), State().digests()
    planned = plan([stage], given)[0]
    _, inputs = judge(planned, state, files)
    make()
    scraps = {"model_path": digests.relative("models/latest/model.keras")}
    products = products_of(planned, scraps, Path("runs/x"), files)
    run = {
        "run_dir": f"runs/20261201T090559Z-{stage}",
        "name": f"20261201T090559Z-{stage}",
        "finished": "2026-12-01T09:06:20+00:00",
        "seconds": 20.5,
        "mlflow_run_id": mlflow_run_id,
        "tracking_uri": "sqlite:///mlflow.db" if mlflow_run_id else None,
        "mlflow_experiment_id": "7" if mlflow_run_id else None,
    }
    write_stamp(state.stamp_path(stage), Stamp(stage, inputs, products, run))
    files.save()
