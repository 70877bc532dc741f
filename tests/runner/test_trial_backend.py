"""runner.trial_backend: the runner's trial backend, trials as executed train notebooks in warm
kernels. The fast tests check what the kernels get (environment, warm-up, the entry point);
the slow ones run a stand-in train notebook (the real one's parameters cell, a body that
glues made-up objectives) in real kernels: reuse and reset between trials, a failing trial
recorded (FAIL, its partial notebook in a FAILED MLflow run) and its kernel replaced,
n_jobs trials at once, and the train notebook's checks run in a kernel."""

import importlib.util
import time
from importlib.metadata import entry_points
from pathlib import Path

import mlflow
import nbformat
import psutil
import pytest
import scrapbook as sb
from optuna.trial import TrialState

from lib import tuning
from lib.core.errors import ParameterError
from lib.data import prep
from runner import trial_backend as trials
from runner.stages import Stage
from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]

FAKE_BODY = """\
import os
import time
from pathlib import Path

import mlflow
import scrapbook as sb

from lib.tracking import runs as tracking

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
meeting = os.environ.get("TUNE_TEST_MEETING")  # trials 0 and 1 wait there for each other
if meeting and mlflow_tags["trial_number"] in ("0", "1"):
    Path(meeting, mlflow_tags["trial_number"]).touch()
    deadline = time.monotonic() + 120
    while len(os.listdir(meeting)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sb.glue("met", len(os.listdir(meeting)) == 2)
if optimiser == "sgd":
    raise ValueError("this trial fails")
if seed == 7:  # pruned, as lib.tuning.pruning.stop_if_pruned does it
    from lib.tuning import pruning

    sb.glue("pruned_at_epoch", 2)
    if run:
        mlflow.end_run(status="KILLED")
    raise pruning.TrialPruned("Trial pruned at epoch 2: val_loss worse than the median")
sb.glue("val_loss", val_split)
sb.glue("val_accuracy", 1 - val_split)
sb.glue("model_uri", f"runs:/{run.info.run_id}/model" if run else model_dir)
if run:
    mlflow.end_run()
"""


def _fake_train_stage(path: Path) -> Stage:
    real = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    params = next(c for c in real.cells if "parameters" in c.metadata.get("tags", []))
    nb = nbformat.v4.new_notebook(metadata=real.metadata)
    nb.cells = [params, nbformat.v4.new_code_cell(FAKE_BODY)]
    nbformat.write(nb, path)
    return Stage("train", str(path), "a stand-in train notebook")


def _gone(pids, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Logs and runs of this process under tmp (kernels inherit the environment)."""
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_HPTUNING_TAG", raising=False)
    return tmp_path


# --- what the trial kernels get ---------------------------------------------------------


def test_the_runner_declares_its_backend_under_the_entry_point_lib_looks_up():
    (found,) = entry_points(group=tuning.ENTRY_POINT_GROUP).select(name="notebook")
    assert found.load() is trials.NotebookTrialBackend


def test_the_kernels_environment_shares_the_gpu_between_kernels(monkeypatch):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    monkeypatch.setenv("IMDB_TEST_MARKER", "kept")
    assert trials.kernel_env(1)["IMDB_TEST_MARKER"] == "kept"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in trials.kernel_env(1)
    assert trials.kernel_env(2)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")  # a user's own setting wins
    assert trials.kernel_env(2)["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"


def test_the_warm_up_imports_the_train_notebooks_modules_and_the_stores():
    assert trials.warmup_modules(None) == list(trials.WARMUP_MODULES)
    with_db = trials.warmup_modules("sqlite:///mlflow.db")
    assert with_db[: len(trials.WARMUP_MODULES)] == list(trials.WARMUP_MODULES)
    assert "alembic.migration" in with_db[len(trials.WARMUP_MODULES) :]
    # Every name is an installed module (a misspelt one would only be logged in the kernel).
    assert all(importlib.util.find_spec(name) for name in with_db)


# --- trials in real kernels ------------------------------------------------------------


@pytest.mark.slow
def test_trials_reuse_warm_kernels_and_a_failing_trial_is_recorded(isolated_env):
    tmp_path = isolated_env
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tuning.load_config(
        {
            "n_trials": 3,
            "max_failures": 2,
            "hptuning_tag": "1641159546",
            "mlflow_tracking_uri": store,
            "mlflow_exp_name": "tune-test",
            "kernel_max_rss_mib": 10**6,  # only the failure replaces a kernel here
            "search_space": {
                "val_split": {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025},
                "optimiser": {"type": "categorical", "choices": ["adam", "rmsprop", "sgd"]},
            },
            # Only trial 1 (sgd) fails.
            "enqueue_trials": [{"optimiser": o} for o in ("adam", "sgd", "rmsprop", "adam")],
            "sampler": {"name": "random", "seed": 1},
        }
    )
    stage = _fake_train_stage(tmp_path / "fake_train.ipynb")
    backend = trials.NotebookTrialBackend(1, store, stage=stage, warmup=["mlflow", "scrapbook"])
    handle = tuning.open_study(cfg)
    parent = tuning.start_parent_run(cfg, handle)
    with backend:
        backend.configure(cfg)
        run = tuning.run_trials(cfg, handle, backend, tmp_path / "trials", parent, check=False)
    found = handle.study.trials
    states = [t.state for t in found]
    assert states.count(TrialState.COMPLETE) == 3 and run.failed == [1], run

    scraps = {
        t.number: {k: v.data for k, v in sb.read_notebook(t.user_attrs["notebook"]).scraps.items()}
        for t in found
    }
    pids = [scraps[n]["pid"] for n in sorted(scraps)]
    # Trial 0 ran in the warm kernel; the failed trial 1 retired it; 2 and 3 share the next.
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert not any(s["leaked"] for s in scraps.values())  # namespaces were reset
    assert _gone(set(pids))  # leaving the with block shut the kernels down
    nb = nbformat.read(found[2].user_attrs["notebook"], as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # a fresh session in a reused kernel

    failed = found[1]
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


@pytest.mark.slow
def test_a_pruned_trial_keeps_its_kernel_and_its_run_ends_killed(isolated_env):
    tmp_path = isolated_env
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tuning.load_config(
        {
            "n_trials": 2,
            "mlflow_tracking_uri": store,
            "mlflow_exp_name": "pruned-test",
            "kernel_max_rss_mib": 10**6,
            "search_space": {"seed": {"type": "categorical", "choices": [7, 8]}},
            "enqueue_trials": [{"seed": 7}, {"seed": 8}],  # trial 0 is pruned
        }
    )
    stage = _fake_train_stage(tmp_path / "fake_train.ipynb")
    backend = trials.NotebookTrialBackend(1, store, stage=stage, warmup=["mlflow", "scrapbook"])
    handle = tuning.open_study(cfg)
    parent = tuning.start_parent_run(cfg, handle)
    with backend:
        backend.configure(cfg)
        tuning.run_trials(cfg, handle, backend, tmp_path / "trials", parent, check=False)
        recycled = backend.pool.stats["recycled"]
    found = handle.study.trials
    assert [t.state for t in found] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert recycled == 0  # a pruned trial's kernel is reset and lent again
    notebooks = [Path(t.user_attrs["notebook"]) for t in found]
    pids = [sb.read_notebook(str(n)).scraps["pid"].data for n in notebooks]
    assert pids[0] == pids[1]
    text = notebooks[0].read_text(encoding="utf-8")
    assert "An Exception was encountered" not in text  # no papermill banner: its one line
    assert "Trial pruned at epoch 2: val_loss worse than the median" in text
    client = mlflow.MlflowClient(store)
    run = client.get_run(found[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"  # not FAILED: neither the hook nor the reset
    assert "TrialPruned" in run.data.tags["notebook_stopped"]
    names = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
    assert names == ["notebook/train.ipynb"]


@pytest.mark.slow
def test_n_jobs_trials_run_at_once_each_in_its_own_kernel(isolated_env, monkeypatch):
    tmp_path = isolated_env
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    monkeypatch.setenv("TUNE_TEST_MEETING", str(meeting))  # before the kernels start
    cfg = tuning.load_config({"n_trials": 5, "n_jobs": 2, "setup_mlflow": False})
    stage = _fake_train_stage(tmp_path / "fake_train.ipynb")
    handle = tuning.open_study(cfg)
    with trials.NotebookTrialBackend(1, None, stage=stage, warmup=["scrapbook"]) as backend:
        backend.configure(cfg)  # n_jobs 2: a second kernel
        assert backend.pool.size == 2
        assert backend.pool.max_rss_mib == tuning.default_kernel_rss_mib(2)
        run = tuning.run_trials(cfg, handle, backend, tmp_path / "trials", None, check=False)
    found = handle.study.trials
    assert [t.state for t in found].count(TrialState.COMPLETE) == 5 and run.stopped is None
    scraps = {t.number: sb.read_notebook(t.user_attrs["notebook"]).scraps for t in found}
    # Trials 0 and 1 waited for each other: both got through, so they ran at the same time,
    # in two kernels, for two workers.
    assert scraps[0]["met"].data and scraps[1]["met"].data
    assert scraps[0]["pid"].data != scraps[1]["pid"].data
    assert found[0].user_attrs["worker"] != found[1].user_attrs["worker"]
    pids = {s["pid"].data for s in scraps.values()}
    assert len(pids) == 2  # two kernels, each reused
    assert _gone(pids)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("trial-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=10, words=20)], root / "processed")
    return root / "processed"


@pytest.mark.slow
def test_the_train_notebooks_checks_run_in_a_warm_kernel(isolated_env, data):
    good = tuning.load_config({"train_params": {"data_path": str(data)}})
    bad = tuning.load_config(
        {
            "train_params": {"data_path": str(data)},
            "search_space": {"optimiser": {"type": "categorical", "choices": ["adam", "adamx"]}},
        }
    )
    cases = tuning.preflight_cases(bad, isolated_env / "trial-check")
    with trials.NotebookTrialBackend(1, None, warmup=["lib.model.train_checks"]) as backend:
        assert backend.check(tuning.preflight_cases(good, isolated_env / "trial-check")) is None
        found = backend.check(cases)
        pid = backend.pool.acquire(timeout=120).pid  # the kernel is lent again after a check
    assert found["varied"] == "optimiser" and "adamx" in found["error"]
    assert found["error"].startswith("ParameterError: optimiser: ")
    error = tuning.trials.preflight_error(bad, cases, found)
    assert isinstance(error, ParameterError) and error.name == "search_space.optimiser"
    assert _gone([pid])
