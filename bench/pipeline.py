"""Benchmark: what deciding costs in ``python -m runner pipeline``, on the full data set.

Usage: python bench/pipeline.py ../shared/data/aclImdb_v1.tar.gz

In one run, on a fresh copy of the project (code, notebooks, configuration and pins, with the
archive extracted into its data/raw, a local MLflow store of its own), times:
  (a) the cold pipeline: prep and train, both run (train_s: the train stage alone, from the
      end of prep to the end of train, deciding and stamping included);
  (b) the same pipeline again: every stage up to date (warm_s, the whole process);
  (c) the pipeline after one train parameter changed (the seed: the same work as (a)'s train),
      so that train runs and prep is decided up to date (train_only_s, the whole process).
Goal: warm_s at most 3 s, train_only_s within 10 % of train_s.
Last line: ``cold_s=... warm_s=... train_only_s=... train_s=...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for name in COPIED:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in PINS:
        shutil.copy2(ROOT / name, dest / name)
    return dest


def pipeline(root: Path, env: dict[str, str], *args: str) -> tuple[float, list[tuple[float, str]]]:
    """Run the pipeline in ``root``: its wall time and its stdout lines, each with the time
    since the start at which it came."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "pipeline", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - started, line.rstrip("\n")))
    err = proc.stderr.read() if proc.stderr else ""
    code = proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"pipeline {' '.join(args)} failed ({code}):\n{err[-3000:]}")
    return seconds, lines


def at(lines: list[tuple[float, str]], prefix: str) -> float:
    return next(t for t, line in lines if line.startswith(prefix))


def show(label: str, seconds: float, lines: list[tuple[float, str]]) -> None:
    decisions = [line for _, line in lines if line.startswith(("prep:", "train:", "pipeline:"))]
    print(f"{label}: {seconds:.2f} s", flush=True)
    for line in decisions:
        print(f"    {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = copy_project(Path(tmp) / "project")
        with tarfile.open(args.archive) as tar:
            tar.extractall(root / "data" / "raw", filter="data")
        env = {**os.environ, "LOG_DIR": str(root / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("PYTHONPATH", None)

        cold_s, lines = pipeline(root, env)
        train_s = at(lines, "train: done in") - at(lines, "prep: done in")
        show("(a) cold", cold_s, lines)
        warm_s, lines = pipeline(root, env)
        show("(b) warm", warm_s, lines)
        if not any(line.startswith("pipeline: every stage is up to date") for _, line in lines):
            sys.exit("the warm pipeline ran a stage")
        train_only_s, lines = pipeline(root, env, "-p", "train.seed", "4003")
        show("(c) one train parameter changed", train_only_s, lines)
        if not any(line.startswith("prep: up to date") for _, line in lines):
            sys.exit("prep ran after a train parameter changed")
    print(
        f"warm_s/3 s = {warm_s / 3:.2f}; train_only_s/train_s = {train_only_s / train_s:.3f}",
        flush=True,
    )
    print(
        f"cold_s={cold_s:.1f} warm_s={warm_s:.2f} train_only_s={train_only_s:.1f} "
        f"train_s={train_s:.1f}"
    )


if __name__ == "__main__":
    main()
