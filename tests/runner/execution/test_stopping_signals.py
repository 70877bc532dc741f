"""SIGTERM (a stopped Polyaxon job, ``docker stop``) stops a running stage as Ctrl-C does:
the execution stopped, every kernel it started shut down (the tune notebook's trial kernels
too), exit status 143 with one line. A stopped tune records its running trials (FAIL,
"interrupted", their runs KILLED with their partial notebooks) and its parent run ends
KILLED; the same command resumes the study. Run for real: ``python -m runner`` on a small
generated data set, signalled while its notebook runs."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import error_traceback_shown
from tests.support.signals import (
    all_gone,
    cell_running,
    run_kernels,
    run_processes,
    start_stage,
    wait_for,
)

pytestmark = pytest.mark.slow
TERMINATED = "terminated (SIGTERM)"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("signal-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _terminate(proc: subprocess.Popen) -> tuple[int, str]:
    # To the runner alone, as tini forwards it to the process that bash exec'd.
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


@pytest.mark.parametrize("when", ["kernel starting", "model training"])
def test_sigterm_stops_a_training_run_and_its_kernel(tmp_path, data, when):
    # Enough epochs that the training is still running when the signal comes.
    proc = start_stage(
        tmp_path, "train", "-r", "data_path", str(data), "-p", "epochs", "100000", "-p", "bs", "8"
    )
    if when == "kernel starting":  # before nbclient holds the kernel: the runner ends it
        wait_for(lambda: run_kernels(tmp_path, proc.pid), proc, "kernel started")
    else:
        notebook = tmp_path / "run" / "train.ipynb"
        wait_for(lambda: cell_running(notebook, "models.build_model("), proc, "training")
    code, stderr = _terminate(proc)
    assert code == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == f"{TERMINATED}: train stopped"
    assert not error_traceback_shown(stderr), stderr[-3000:]
    # Ended by the runner before it exits, not later by their own watch on their parent.
    assert not run_processes(tmp_path), "the kernel outlived the terminated runner"


def test_ctrl_c_stops_a_training_run_gently_and_its_run_ends_killed(tmp_path, data):
    proc = start_stage(
        tmp_path, "train", "-r", "data_path", str(data), "-p", "epochs", "100000", "-p", "bs", "8"
    )
    # Once an epoch has ended: a Ctrl-C in fit's first moments (Keras tracing its train
    # function) was seen lost once on a loaded machine, and is then ended by the watch's kill.
    lines_read: list[str] = []
    reader = threading.Thread(target=lambda: lines_read.extend(proc.stderr), daemon=True)
    reader.start()
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # a full pipe would block it
    wait_for(lambda: any("epoch 1/" in line for line in lines_read), proc, "an epoch")
    proc.send_signal(signal.SIGINT)  # what a terminal sends on Ctrl-C
    proc.wait(timeout=120)
    reader.join(timeout=10)
    stderr = "".join(lines_read)
    assert proc.returncode == 130, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert lines[-1] == "interrupted", stderr[-3000:]
    assert lines[-2].startswith("error: train stopped: interrupted (cell "), stderr[-3000:]
    assert not error_traceback_shown(stderr), stderr[-3000:]
    assert not all_gone(tmp_path)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED", run.info  # its partial notebook logged to it
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]


def _tune(tmp_path: Path, storage: str, train: dict) -> subprocess.Popen:
    config = {"train_params": train, "n_trials": 2}
    return start_stage(
        tmp_path, "tune", "-r", "storage", storage, "-r", "study_name", "stopped",
        "-y", json.dumps(config),
    )  # fmt: skip


def _runs(tmp_path: Path) -> tuple[mlflow.entities.Run, dict[int, mlflow.entities.Run]]:
    """The study's parent run and its trials' runs by trial number."""
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment-classification")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "study-stopped"]
    children = {int(r.data.tags["trial_number"]): r for r in runs if "trial_number" in r.data.tags}
    return parent, children


def test_sigterm_stops_a_study_records_its_trials_and_the_same_command_resumes_it(tmp_path, data):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Trial 0 completes; trial 1 is stopped in its training cell.
    train = {"data_path": str(data), "epochs": 60, "bs": 2}
    proc = _tune(tmp_path, storage, train)
    notebook = tmp_path / "run" / "trials" / "trial-001" / "train.ipynb"
    wait_for(lambda: cell_running(notebook, "models.build_model("), proc, "trial 1 training")
    # The runner, the tune notebook's kernel and at least one trial kernel.
    assert len(run_processes(tmp_path)) >= 3
    started = time.monotonic()
    code, stderr = _terminate(proc)
    assert code == 143, stderr[-3000:]
    assert time.monotonic() - started < 30  # within Kubernetes' default grace period
    assert stderr.strip().splitlines()[-1] == f"{TERMINATED}: tune stopped"
    assert not error_traceback_shown(stderr), stderr[-3000:]
    # How to go on, on the console and in the partial tune notebook.
    partial = (tmp_path / "run" / "tune.ipynb").read_text(encoding="utf-8")
    assert "run the same command again to resume" in partial
    assert "tune: tuning interrupted: run the same command again to resume: the study " in stderr
    assert not all_gone(tmp_path), "trial kernels outlived the terminated runner"

    trials = optuna.load_study(study_name="stopped", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert re.fullmatch(r"interrupted \(cell \d+\)", trials[1].user_attrs["error"]), trials[1]
    parent, children = _runs(tmp_path)
    assert parent.info.status == "KILLED"  # the runner's hook, after the tune's own clean-up
    assert children[0].info.status == "FINISHED" and children[1].info.status == "KILLED"
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for run in (parent, children[1]):  # each with its partial notebook
        assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")], run.info

    # The same command again: the study resumes, keeps trial 0, and ends with exactly 2.
    proc = _tune(tmp_path, storage, train)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    trials = optuna.load_study(study_name="stopped", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    parent_after, _ = _runs(tmp_path)
    assert parent_after.info.run_id == parent.info.run_id
    assert parent_after.info.status == "FINISHED"
    assert not all_gone(tmp_path)


def test_a_stopped_study_in_memory_says_there_is_nothing_to_resume(tmp_path, data):
    train = {"data_path": str(data), "epochs": 100000, "bs": 8}
    proc = start_stage(tmp_path, "tune", "-y", json.dumps({"train_params": train, "n_trials": 2}))
    notebook = tmp_path / "run" / "trials" / "trial-000" / "train.ipynb"
    wait_for(lambda: cell_running(notebook, "models.build_model("), proc, "trial 0 training")
    code, stderr = _terminate(proc)
    assert code == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == f"{TERMINATED}: tune stopped"
    partial = (tmp_path / "run" / "tune.ipynb").read_text(encoding="utf-8")
    assert "nothing to resume" in partial and "run the same command again" not in partial
    assert "tune: tuning interrupted: the study was in memory (storage: null): nothing" in stderr
    assert not all_gone(tmp_path)
