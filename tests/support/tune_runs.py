"""``python -m runner tune`` run as a user runs it, for the tests of the tune notebook: its
arguments on a small processed data set, its environment (the test's own LOG_DIR marks every
process of the run), and whether its kernels are gone.
"""

import json
import os
import subprocess
import sys
import time

import psutil

from tests.support.runner_process import ROOT


def tune_env(tmp_path, **extra):
    """This environment less any tracking store or tag of the caller's, with the test's LOG_DIR."""
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_HPTUNING_TAG", None)
    return {**env, **extra}


def tune_args(tmp_path, data, *extra, out="run"):
    """The command line of a one-epoch tune on ``data``, tracked under ``tmp_path``."""
    fast = {"data_path": str(data), "epochs": 1, "bs": 32}
    return [
        sys.executable,
        "-m",
        "runner",
        "tune",
        "-p",
        "mlflow_tracking_uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "-p",
        "mlflow_exp_name",
        "tune-it",
        "-y",
        json.dumps({"train_params": fast}),
        "--output-dir",
        str(tmp_path / out),
        *extra,
    ]


def run_tune(tmp_path, data, *extra, out="run", timeout=600, **env):
    """``python -m runner tune`` on ``data``, to completion; ``env``: extra variables."""
    return subprocess.run(
        tune_args(tmp_path, data, *extra, out=out),
        cwd=ROOT,
        env=tune_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kernels_gone(tmp_path, timeout=30.0):
    """No process is left with this test's LOG_DIR (runner, tune kernel, trial kernels)."""
    marker = f"LOG_DIR={tmp_path / 'logs'}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = []
        for proc in psutil.process_iter(["pid"]):
            try:
                env = proc.environ()
            except psutil.Error:
                continue
            if f"LOG_DIR={env.get('LOG_DIR')}" == marker and proc.status() != "zombie":
                left.append(proc.pid)
        if not left:
            return True
        time.sleep(0.5)
    return False
