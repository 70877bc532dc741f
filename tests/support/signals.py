"""Runner processes stopped by a signal: each started with its own LOG_DIR, which marks every
process of the run (its kernels inherit it), so that psutil finds them all and can tell when
they are gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.support.runner_process import ROOT


def signal_env(tmp_path: Path) -> dict[str, str]:
    """The test's own LOG_DIR marks every process of the run (the kernels inherit it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_processes(tmp_path: Path) -> list[psutil.Process]:
    """The live processes of this test's run: the runner and its kernels."""
    marker = str(tmp_path / "logs")
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("LOG_DIR") == marker and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def run_kernels(tmp_path: Path, runner_pid: int) -> list[psutil.Process]:
    """The run's processes but the runner itself: its kernels."""
    return [p for p in run_processes(tmp_path) if p.pid != runner_pid]


def all_gone(tmp_path: Path, timeout: float = 30.0) -> list[psutil.Process]:
    """The run's processes still alive after up to ``timeout`` s (none: all gone)."""
    deadline = time.monotonic() + timeout
    while (left := run_processes(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def start_stage(tmp_path: Path, stage: str, *params: str) -> subprocess.Popen:
    """``python -m runner STAGE`` started in the background, tracked under ``tmp_path``."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, "-m", "runner", stage, "-p", "mlflow_tracking_uri", store, *params]
    return subprocess.Popen(
        [*argv, "--output-dir", str(tmp_path / "run")],
        cwd=ROOT,
        env=signal_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    """Until ``condition()``; AssertionError if the runner ends first or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the runner ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)


def cell_running(notebook: Path, code: str) -> bool:
    """Whether the executed notebook, as papermill saved it, has the cell holding ``code``
    started and not ended (papermill saves the notebook when a cell starts)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
        return False
    for cell in cells:
        meta = cell["metadata"].get("papermill", {})
        if code in "".join(cell["source"]) and meta.get("start_time"):
            return not meta.get("end_time")
    return False
