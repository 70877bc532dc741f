"""Tuning trials that die or hang, run for real: ``python -m runner tune`` on a small
generated data set, with the real train notebook. A trial kernel killed with SIGKILL in its
training cell (what the out-of-memory killer does) and a trial past ``trial_timeout_s``
each end FAIL with their cause in one line and their partial notebook in a FAILED MLflow
run; their kernel is replaced and the study goes on to ``n_trials`` completed trials."""

from __future__ import annotations

import json
import re

import mlflow
import optuna
import psutil
import pytest
from optuna.trial import TrialState

from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.signals import all_gone, cell_running, start_stage, wait_for

pytestmark = pytest.mark.slow
TRAINING = "models.build_model("  # the train notebook's training cell
EXPERIMENT = "sentiment-classification"  # the tune notebook's default


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("failure-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _tune(tmp_path, name: str, config: dict):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = start_stage(
        tmp_path, "tune", "-r", "storage", storage, "-r", "study_name", name,
        "-y", json.dumps(config),
    )  # fmt: skip
    return proc, storage


def _trial_kernels(runner_pid: int) -> list[psutil.Process]:
    """The kernels the tune kernel (the runner's child) started for its trials."""
    found = []
    for tune_kernel in psutil.Process(runner_pid).children():
        found += [k for k in tune_kernel.children() if "ipykernel" in " ".join(k.cmdline())]
    return found


def _child_runs(tmp_path) -> dict[int, mlflow.entities.Run]:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    return {int(r.data.tags["trial_number"]): r for r in runs if "trial_number" in r.data.tags}


def _notebook_artifacts(tmp_path, run_id: str) -> list[str]:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return [a.path for a in client.list_artifacts(run_id, "notebook")]


def test_a_trial_kernel_killed_mid_trial_fails_that_trial_and_the_study_goes_on(tmp_path, data):
    train = {"data_path": str(data), "epochs": 60, "bs": 2}
    # n_trials counts finished trials: the killed one does not, the one after it does
    proc, storage = _tune(tmp_path, "killed", {"train_params": train, "n_trials": 1})
    notebook = tmp_path / "run" / "trials" / "trial-000" / "train.ipynb"
    wait_for(lambda: cell_running(notebook, TRAINING), proc, "trial 0 training")
    (kernel,) = _trial_kernels(proc.pid)  # n_jobs 1: one trial kernel
    kernel.kill()  # SIGKILL, as the out-of-memory killer sends it
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]

    trials = optuna.load_study(study_name="killed", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    error = trials[0].user_attrs["error"]
    cause = "the kernel died: killed by SIGKILL, probably out of memory; last measured "
    assert error.startswith(cause), error
    assert re.match(r"\d+(\.\d)? [MG]iB", error[len(cause) :]), error
    assert "\n" not in error
    runs = _child_runs(tmp_path)
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["notebook_error"] == error
    assert _notebook_artifacts(tmp_path, runs[0].info.run_id) == ["notebook/train.ipynb"]
    assert runs[1].info.status == "FINISHED" and 2 not in runs
    assert not kernel.is_running()  # trial 1 ran in the kernel that replaced it
    assert not all_gone(tmp_path)


def test_a_trial_past_its_time_limit_fails_and_the_study_goes_on(tmp_path, data):
    config = {
        "n_trials": 1,  # finished trials: the failed one does not count, the next one does
        "trial_timeout_s": 40,  # a 2-epoch trial takes about 10 s here
        "train_params": {"data_path": str(data), "bs": 8},
        "search_space": {"epochs": {"type": "categorical", "choices": [2, 100000]}},
        "enqueue_trials": [{"epochs": 100000}, {"epochs": 2}],
    }
    proc, storage = _tune(tmp_path, "slow", config)
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]

    trials = optuna.load_study(study_name="slow", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    error = trials[0].user_attrs["error"]
    assert re.fullmatch(r"timed out after 40 s \(cell \d+\)", error), error
    assert 40 <= trials[0].user_attrs["seconds"] < 40 + 25  # interrupted, not left to run
    runs = _child_runs(tmp_path)
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["notebook_error"] == error
    assert _notebook_artifacts(tmp_path, runs[0].info.run_id) == ["notebook/train.ipynb"]
    assert not all_gone(tmp_path)
