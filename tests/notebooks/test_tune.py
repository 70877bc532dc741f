"""The tune notebook through the runner, with the real train notebook on a tiny generated
data set (1 epoch): the reference configuration, a killed study resumed, two tune processes
sharing one storage, and bad configurations stopped before any trial. Everything is written
under tmp: the MLflow store, the Optuna storage, the run folders and the logs. (The trial
machinery with a stand-in train notebook is tests/runner/test_trial_backend.py's.)"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import scrapbook as sb
from optuna.trial import TrialState

from lib import tuning
from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.provenance import check_provenance
from tests.support.runner_process import loud_lines
from tests.support.tune_runs import kernels_gone, run_tune, tune_args, tune_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _project_tune_runs() -> set[str]:
    runs = ROOT / "runs"
    return {p.name for p in runs.iterdir() if "tune" in p.name} if runs.is_dir() else set()


def test_reference_config_runs_three_trials_as_child_runs_with_their_notebooks(tmp_path, data):
    runs_before = _project_tune_runs()
    result = run_tune(tmp_path, data, "-f", "conf/hptuning.yml", MLFLOW_HPTUNING_TAG="1641159546")
    assert result.returncode == 0, result.stderr[-5000:]
    assert loud_lines(result.stdout + result.stderr) == []  # nothing at WARNING or above
    run_dir = tmp_path / "run"
    # The plots (Pareto front, importances) have their alternative text in the HTML.
    alts = re.findall(r"<img\b[^>]*\balt=\"([^\"]*)\"", (run_dir / "tune.html").read_text())
    assert len(alts) == 2, alts
    assert alts[0].startswith("Pareto front of 3 complete trial(s)"), alts
    assert alts[1].startswith("Parameter importances (fANOVA): for val_loss, "), alts
    scraps = {k: v.data for k, v in sb.read_notebook(str(run_dir / "tune.ipynb")).scraps.items()}
    assert scraps["hptuning_tag"] == "1641159546" and scraps["n_complete"] == 3
    assert scraps["best_trials"] and all(
        set(b["values"]) == {"val_loss", "val_accuracy"} and b["model_uri"].startswith("runs:/")
        for b in scraps["best_trials"]
    )
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("tune-it").experiment_id],
        filter_string='tags.hptuning_tag = "1641159546"',
    )
    parent = scraps["mlflow_run_id"]
    children = [r for r in runs if r.info.run_id != parent]
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["trial_number"] for r in children} == {"0", "1", "2"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent}
    for child in children:
        arts = [a.path for a in client.list_artifacts(child.info.run_id, "notebook")]
        assert arts == ["notebook/train.ipynb"]
        n = int(child.data.tags["trial_number"])
        assert (run_dir / "trials" / f"trial-{n:03d}" / "train.ipynb").is_file()
        assert child.data.params["optimiser"] in ("adam", "rmsprop")
    parent_arts = {a.path for a in client.list_artifacts(parent, "study")}
    assert {"study/trials.csv", "study/pareto_front.png", "study/importances.png"} <= parent_arts
    assert {a.path for a in client.list_artifacts(parent, "notebook")} >= {"notebook/tune.ipynb"}
    assert client.get_run(parent).info.status == "FINISHED"
    # Each run says what it was made of: the tune's code holds the trials' and their backend.
    fingerprint = prep.read_manifest(data)["fingerprint"]
    tune_code = ("lib/tuning/loop.py", "lib/model/training.py", "runner/trial_backend.py")
    check_provenance(client, parent, "tune", fingerprint, tune_code)
    trial = check_provenance(client, children[0].info.run_id, "train", fingerprint)
    assert (
        "lib/model/training.py" in trial["modules"] and "lib/tuning/loop.py" not in trial["modules"]
    )
    # The notebook's own pool started the trial kernel, and said so.
    assert re.search(
        r"kernel 1 ready in [\d.]+ s \(pid \d+\)", (run_dir / "tune.ipynb").read_text()
    )
    assert kernels_gone(tmp_path)
    assert _project_tune_runs() == runs_before  # all of it under --output-dir, none in runs/


def test_a_killed_study_resumes_with_exactly_n_trials(tmp_path, data):
    """Killed while trial 1 runs (trial 0 complete); run again: trial 1 is failed (its
    heartbeat stopped) and retried with its parameters, trial 0 is kept."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    extra = [
        "-r",
        "storage",
        storage,
        "-p",
        "n_trials",
        "2",
        "-p",
        "heartbeat_interval",
        "1",
        "-p",
        "grace_period",
        "3",
        "-r",
        "study_name",
        "killed",
    ]
    proc = subprocess.Popen(
        tune_args(tmp_path, data, *extra, out="run1"),
        cwd=ROOT,
        env=tune_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    opened, caught = None, False
    while time.monotonic() < deadline and proc.poll() is None and not caught:
        time.sleep(0.2)
        try:
            opened = opened or optuna.load_study(study_name="killed", storage=storage)
        except KeyError:
            continue
        states = [t.state for t in opened.get_trials(deepcopy=False)]
        caught = states.count(TrialState.COMPLETE) >= 1 and TrialState.RUNNING in states
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the tune kernel; trial kernels follow
    proc.wait(timeout=30)
    assert caught, "the tune run never had a trial complete and one running"
    assert kernels_gone(tmp_path), "kernels outlived the killed tune process"
    before = opened.get_trials(deepcopy=False)
    # What the kill left RUNNING (trial 1, unless it ended in the instant before the kill).
    left_running = {t.number for t in before if t.state == TrialState.RUNNING}

    result = run_tune(tmp_path, data, *extra, out="run2")
    assert result.returncode == 0, result.stderr[-5000:]
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    assert len({t.number for t in complete}) == 2
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert {k.number for k in killed} == left_running  # failed once their heartbeat stopped
    for k in killed:  # and retried with their parameters
        retry = next(c for c in complete if c.system_attrs.get("failed_trial") == k.number)
        assert retry.params == k.params
    done_before = {t.number for t in before if t.state == TrialState.COMPLETE}
    ran_again = {int(p.name.split("-")[1]) for p in (tmp_path / "run2" / "trials").glob("trial-*")}
    assert not done_before & ran_again  # the completed trial was not run again


def test_two_tune_processes_on_one_storage_end_with_exactly_n_trials(tmp_path, data):
    storage = str(tmp_path / "journal.log")
    extra = ["-r", "storage", storage, "-p", "n_trials", "3", "-r", "study_name", "shared"]
    procs = [
        subprocess.Popen(
            tune_args(tmp_path, data, *extra, out=f"run{i}"),
            cwd=ROOT,
            env=tune_env(tmp_path, MLFLOW_HPTUNING_TAG="shared-tag"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    study = optuna.load_study(study_name="shared", storage=tuning.open_storage(storage, 30, 120))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    per_process = [
        {int(p.name.split("-")[1]) for p in (tmp_path / f"run{i}" / "trials").glob("trial-*")}
        for i in range(2)
    ]
    assert not per_process[0] & per_process[1]  # no trial ran twice
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("tune-it").experiment_id],
        filter_string='tags.hptuning_tag = "shared-tag"',
    )
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}
    assert len(parents) == 1  # one parent run for the study
    assert sum(1 for r in runs if r.data.tags.get("mlflow.parentRunId")) == 3


def test_bad_configuration_fails_before_any_trial_with_the_key_named(tmp_path, data):
    """A bad search-space entry, and a choice the train notebook refuses, stop in the
    runner's check before any kernel, with one line; neither runs a trial."""
    bad_type = "{search_space: {val_split: {type: floaty, low: 0, high: 1}}}"
    result = run_tune(tmp_path, data, "-y", bad_type, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]  # the user's input to change
    # Refused by the runner before any kernel (lib.tuning.trials.check_tune_params): one line.
    assert result.stderr.strip().splitlines() == [
        "error: search_space.val_split.type: unknown type 'floaty'; allowed: int, float, "
        "categorical"
    ]

    space = "{search_space: {optimiser: {type: categorical, choices: [adam, adamx]}}}"
    result = run_tune(tmp_path, data, "-y", space, out="run2", timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    # Also before any kernel: a refusal that needs neither data nor TensorFlow (the trial
    # kernels' preflight, for the others, is tested in tests/runner/test_trial_backend.py).
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: search_space.optimiser: the train notebook refuses 'adamx'")
    assert not list((tmp_path / "run2" / "trials").glob("trial-0*"))
    assert kernels_gone(tmp_path)
