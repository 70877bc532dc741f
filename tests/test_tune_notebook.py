"""Tuning with real notebook executions.

First the machinery with a stand-in train notebook (the real one's parameters cell, a body
that glues made-up objectives): warm kernels are reused and reset between trials, a failing
trial is recorded (FAIL, its partial notebook in a FAILED MLflow run) and replaces its
kernel. Then the tune notebook itself with the real train notebook on a tiny generated data
set (1 epoch): the reference configuration through the runner, a killed study resumed, and
two tune processes sharing one storage. Everything is written under tmp: the MLflow store,
the Optuna storage, the run folders and the logs.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import nbformat
import optuna
import psutil
import pytest
import scrapbook as sb
from optuna.trial import TrialState

from lib import prep, tuning
from runner.kernel_pool import (
    HANDOFF_ENV,
    KernelCodeError,
    KernelPool,
    KernelPoolError,
    handoff_env_value,
    run_code,
    take_handoffs,
)
from runner.stages import Stage
from tests.datagen import make_raw_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

FAKE_BODY = """\
import os

import mlflow
import scrapbook as sb

from lib import tracking

run = None
if setup_mlflow:
    run = tracking.start_run(
        tracking_uri=mlflow_tracking_uri,
        experiment_name=mlflow_exp_name,
        run_name=mlflow_run_name,
        tags=tracking.run_tags(hptuning_tag, mlflow_tags),
        parent_run_id=mlflow_parent_run_id,
    )
    sb.glue("mlflow_run_id", run.info.run_id)
    sb.glue("mlflow_tracking_uri", mlflow_tracking_uri)
sb.glue("leaked", "left_over" in globals())  # a previous trial's variable must be gone
left_over = True
sb.glue("pid", os.getpid())
if optimiser == "sgd":
    raise ValueError("this trial fails")
sb.glue("val_loss", val_split)
sb.glue("val_accuracy", 1 - val_split)
sb.glue("model_uri", f"runs:/{run.info.run_id}/model" if run else model_dir)
if run:
    mlflow.end_run()
"""


def _gone(pids, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _fake_train_notebook(path: Path) -> Path:
    real = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    params = next(c for c in real.cells if "parameters" in c.metadata.get("tags", []))
    nb = nbformat.v4.new_notebook(metadata=real.metadata)
    nb.cells = [params, nbformat.v4.new_code_cell(FAKE_BODY)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Logs and runs of this process under tmp (kernels inherit the environment)."""
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_HPTUNING_TAG", raising=False)
    return tmp_path


def test_trials_reuse_warm_kernels_and_a_failing_trial_is_recorded(isolated_env):
    tmp_path = isolated_env
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stage = Stage("train", str(_fake_train_notebook(tmp_path / "fake_train.ipynb")), "fake")
    cfg = tuning.load_config(
        {
            "n_trials": 3,
            "max_failures": 2,
            "hptuning_tag": "1641159546",
            "mlflow_tracking_uri": store,
            "mlflow_exp_name": "tune-test",
            "search_space": {
                "val_split": {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025},
                "optimiser": {"type": "categorical", "choices": ["adam", "rmsprop", "sgd"]},
            },
            # Only trial 1 (sgd) fails.
            "enqueue_trials": [{"optimiser": o} for o in ("adam", "sgd", "rmsprop", "adam")],
            "sampler": {"name": "random", "seed": 1},
        }
    )
    pool = KernelPool(1, warmup_code="import mlflow, scrapbook", cwd=ROOT).start()
    handle = tuning.open_study(cfg)
    parent = tuning.start_parent_run(cfg, handle)
    trials_dir = tmp_path / "run" / "trials"
    run = tuning.run_trials(cfg, handle, pool, trials_dir, parent, check=False, stage=stage)
    trials = handle.study.trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and run.failed == [1], run

    scraps = {
        t.number: {k: v.data for k, v in sb.read_notebook(t.user_attrs["notebook"]).scraps.items()}
        for t in trials
    }
    pids = [scraps[n]["pid"] for n in sorted(scraps)]
    # Trial 0 ran in the warm kernel; the failed trial 1 retired it; 2 and 3 share the next.
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert not any(s["leaked"] for s in scraps.values())  # namespaces were reset
    assert _gone(set(pids))  # run_trials shut the pool down
    nb = nbformat.read(trials[2].user_attrs["notebook"], as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # a fresh session in a reused kernel

    failed = trials[1]
    assert failed.state == TrialState.FAIL
    assert "ValueError: this trial fails" in failed.user_attrs["error"]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs(
        [client.get_experiment_by_name("tune-test").experiment_id],
        filter_string='tags.hptuning_tag = "1641159546"',
    )
    children = {r.data.tags["trial_number"]: r for r in runs if r.info.run_id != parent}
    assert set(children) == {"0", "1", "2", "3"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in children.values())
    assert all(r.data.tags["study_name"] == cfg.study_name for r in children.values())
    assert children["1"].info.status == "FAILED" and children["0"].info.status == "FINISHED"
    for number, child in children.items():
        names = [a.path for a in client.list_artifacts(child.info.run_id, "notebook")]
        assert names == ["notebook/train.ipynb"], number  # trial_html is off by default
    assert "ValueError" in children["1"].data.tags["notebook_error"]


def test_n_jobs_trials_run_at_once_each_in_its_own_kernel(isolated_env):
    tmp_path = isolated_env
    stage = Stage("train", str(_fake_train_notebook(tmp_path / "fake_train.ipynb")), "fake")
    cfg = tuning.load_config({"n_trials": 5, "n_jobs": 2, "setup_mlflow": False})
    pool = tuning.start_kernel_pool(2, None)
    # Both kernels warm before the first trial: fake trials are so short that one kernel
    # could otherwise run them all while the other is still importing.
    for kernel in [pool.acquire(timeout=120) for _ in range(2)]:
        pool.release(kernel)
    handle = tuning.open_study(cfg)
    run = tuning.run_trials(cfg, handle, pool, tmp_path / "trials", None, check=False, stage=stage)
    trials = handle.study.trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 5 and run.stopped is None
    pids = {sb.read_notebook(t.user_attrs["notebook"]).scraps["pid"].data for t in trials}
    assert len(pids) == 2  # two kernels, each reused
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert workers == {"0", "1"}
    starts = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(starts, starts[1:], strict=False))  # overlapped
    assert _gone(pids)


def test_a_kernel_pool_replaces_kernels_past_their_limits_and_leaves_none(tmp_path):
    with KernelPool(1, max_uses=2) as pool:
        first = pool.acquire()
        pid = first.pid
        pool.release(first)
        again = pool.acquire()
        assert again is first and again.pid == pid and again.uses == 2
        pool.release(again)  # its second use: replaced
        fresh = pool.acquire(timeout=120)
        assert fresh.pid != pid and fresh.number == 2
        pool.max_rss_mib = 1  # any kernel holds more: replaced after its next notebook
        pool.release(fresh)
        third = pool.acquire(timeout=120)
        assert third.number == 3 and pool.stats["recycled"] == 2
        pool.release(third)
    assert _gone({pid, fresh.pid, third.pid})


def test_a_pool_adopts_kernels_handed_off_by_another_pool_and_leaves_none(tmp_path):
    """The runner's hand-off: one pool starts and warms kernels, another (the tune
    notebook's) adopts them, lends them, and shuts them down; a dead hand-off is replaced."""
    starter = KernelPool(2, warmup_code="import json\nwarm = 1", handoff_only=True).start()
    try:
        handoffs = starter.handoffs()
        assert len(handoffs) == 2 and all(Path(h.connection_file).is_file() for h in handoffs)
        os.kill(handoffs[1].pid, signal.SIGKILL)  # dies before it is adopted
        with pytest.raises(KernelPoolError):
            starter.acquire(timeout=1)  # a hand-off pool lends nothing
        env = {HANDOFF_ENV: handoff_env_value(handoffs)}
        adopted = take_handoffs(env)
        assert adopted == handoffs and HANDOFF_ENV not in env
        with KernelPool(2, adopt=adopted, warmup_code="import json") as pool:
            first, second = pool.acquire(timeout=120), pool.acquire(timeout=120)
            by_pid = {k.pid: k for k in (first, second)}
            assert handoffs[0].pid in by_pid and handoffs[1].pid not in by_pid
            kernel = by_pid[handoffs[0].pid]
            # warmed by the starter, reset by the adopter before it was lent
            assert "NameError" in _error_of(kernel, "warm")
            assert run_code(kernel, "import json\nprint(json.dumps(1 + 1))").strip() == "2"
            pool.release(first)
            pool.release(second)
        assert _gone({handoffs[0].pid, *by_pid})
    finally:
        starter.shutdown()
    assert _gone([h.pid for h in handoffs])


def _error_of(kernel, code: str) -> str:
    try:
        run_code(kernel, code)
    except KernelCodeError as exc:
        return exc.ename
    return ""


def test_malformed_hand_offs_are_ignored():
    env = {HANDOFF_ENV: "not json"}
    assert take_handoffs(env) == [] and HANDOFF_ENV not in env
    assert take_handoffs({}) == []


# --- the tune notebook with the real train notebook -------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _env(tmp_path, **extra):
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_HPTUNING_TAG", None)
    return {**env, **extra}


def _tune_args(tmp_path, data, *extra, out="run"):
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


def _tune(tmp_path, data, *extra, out="run", timeout=600, **env):
    """``python -m runner tune`` on ``data``, to completion; ``env``: extra variables."""
    return subprocess.run(
        _tune_args(tmp_path, data, *extra, out=out),
        cwd=ROOT,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _kernels_gone(tmp_path, timeout=30.0):
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


def test_reference_config_runs_three_trials_as_child_runs_with_their_notebooks(tmp_path, data):
    result = _tune(tmp_path, data, "-f", "conf/hptuning.yml", MLFLOW_HPTUNING_TAG="1641159546")
    assert result.returncode == 0, result.stderr[-5000:]
    run_dir = tmp_path / "run"
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
    # The runner started the trial kernel before the tune kernel; the tune notebook adopted it.
    handed = re.search(r"kernel 1 warmed up for hand-off in [\d.]+ s \(pid (\d+)\)", result.stderr)
    tune_nb = (run_dir / "tune.ipynb").read_text()
    adopted = re.search(r"kernel 1 ready in [\d.]+ s \(pid (\d+)\)", tune_nb)
    assert handed and adopted and handed.group(1) == adopted.group(1)
    assert _kernels_gone(tmp_path)
    assert not (ROOT / "runs").exists() or not any(
        "tune" in p.name for p in (ROOT / "runs").iterdir() if p.stat().st_mtime > time.time() - 600
    )


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
        _tune_args(tmp_path, data, *extra, out="run1"),
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    opened = None
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1)
        try:
            opened = opened or optuna.load_study(study_name="killed", storage=storage)
        except KeyError:
            continue
        states = [t.state for t in opened.get_trials(deepcopy=False)]
        if states.count(TrialState.COMPLETE) >= 1 and TrialState.RUNNING in states:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the tune kernel; trial kernels follow
    proc.wait(timeout=30)
    assert _kernels_gone(tmp_path), "kernels outlived the killed tune process"
    before = opened.get_trials(deepcopy=False)
    assert [t.state for t in before].count(TrialState.COMPLETE) == 1

    result = _tune(tmp_path, data, *extra, out="run2")
    assert result.returncode == 0, result.stderr[-5000:]
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    assert len({t.number for t in complete}) == 2
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert killed and all(
        any(c.system_attrs.get("failed_trial") == k.number for c in complete) for k in killed
    )
    done_before = {t.number for t in before if t.state == TrialState.COMPLETE}
    ran_again = {int(p.name.split("-")[1]) for p in (tmp_path / "run2" / "trials").glob("trial-*")}
    assert not done_before & ran_again  # the completed trial was not run again


def test_two_tune_processes_on_one_storage_end_with_exactly_n_trials(tmp_path, data):
    storage = str(tmp_path / "journal.log")
    extra = ["-r", "storage", storage, "-p", "n_trials", "3", "-r", "study_name", "shared"]
    procs = [
        subprocess.Popen(
            _tune_args(tmp_path, data, *extra, out=f"run{i}"),
            cwd=ROOT,
            env=_env(tmp_path, MLFLOW_HPTUNING_TAG="shared-tag"),
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
    """A bad search-space entry stops at once; a choice the train notebook refuses stops in
    the preflight, in a warm trial kernel; neither runs a trial."""
    bad_type = "{search_space: {val_split: {type: floaty, low: 0, high: 1}}}"
    result = _tune(tmp_path, data, "-y", bad_type, timeout=300)
    assert result.returncode == 1
    assert "TuningConfigError: search_space.val_split.type: unknown type 'floaty'" in result.stderr
    assert "Traceback" not in result.stderr  # a user error: one line, no traceback wall

    space = "{search_space: {optimiser: {type: categorical, choices: [adam, adamx]}}}"
    result = _tune(tmp_path, data, "-y", space, out="run2", timeout=300)
    assert result.returncode == 1
    assert "TuningConfigError: search_space.optimiser: the train notebook refuses 'adamx'" in (
        result.stderr
    ), result.stderr[-3000:]
    assert not list((tmp_path / "run2" / "trials").glob("trial-0*"))
    assert _kernels_gone(tmp_path)
