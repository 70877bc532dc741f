"""Pruning from inside the train notebooks, through the runner (``python -m runner tune``)
with the real train notebook on a tiny generated data set: a single-objective study with
the median pruner prunes a hopeless trial at its first epoch, in SQLite, journal and
in-memory (``storage: null``) studies; its MLflow run ends KILLED with its per-epoch
metrics up to the pruning and the epoch as a tag, and its notebook ends with one line.
Two tune processes with a pruner on one storage end with exactly ``n_trials`` finished."""

import json
import subprocess

import mlflow
import nbformat
import optuna
import pytest
import scrapbook as sb
import yaml
from optuna.trial import TrialState

from lib import tuning
from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import ROOT
from tests.support.tune_runs import kernels_gone, tune_args, tune_env

pytestmark = pytest.mark.slow

GOOD = {"learning_rate": 0.05, "optimiser": "adam"}
HOPELESS = {"learning_rate": 1e-5, "optimiser": "sgd"}  # val_loss stays at log(2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _settings(data, **extra):
    """A single-objective study that the median pruner can prune: two good trials first
    (enqueued), then a hopeless one, whose val_loss after epoch 1 is worse than theirs."""
    return {
        "objectives": ["val_loss"],
        "directions": ["minimize"],
        "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "optimiser": {"type": "categorical", "choices": ["sgd", "adam"]},
        },
        "enqueue_trials": [GOOD, GOOD, HOPELESS],
        "n_trials": 3,
        "train_params": {"data_path": str(data), "epochs": 2, "bs": 16},
        **extra,
    }


def _args(tmp_path, settings, out):
    # The study's own settings (train_params with its data set) after the tune test's.
    yaml_settings = yaml.safe_dump(settings)  # YAML 1.1 reads JSON's 1e-05 as a string
    return tune_args(tmp_path, settings["train_params"]["data_path"], "-y", yaml_settings, out=out)


@pytest.mark.parametrize("kind", ["sqlite", "journal", None])
def test_a_hopeless_trial_is_pruned_killed_tagged_and_its_notebook_ends_with_one_line(
    tmp_path, data, kind
):
    storage = {"sqlite": f"sqlite:///{tmp_path / 'optuna.db'}", "journal": str(tmp_path / "j")}
    settings = _settings(data, storage=storage.get(kind), study_name=f"prune-{kind}")
    result = subprocess.run(
        _args(tmp_path, settings, "run"),
        cwd=ROOT,
        env=tune_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    run_dir = tmp_path / "run"
    # storage null: the study lived in a journal in the run folder, for this run only.
    where = storage.get(kind) or str(run_dir / "study" / "study.journal")
    study = optuna.load_study(study_name=f"prune-{kind}", storage=tuning.open_storage(where))
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED]
    assert study.metric_names == ["val_loss"]
    pruned = trials[2]
    assert pruned.params == HOPELESS and pruned.user_attrs["pruned_at_epoch"] == 1
    assert list(pruned.intermediate_values) == [0]  # reported once, then stopped
    assert all(list(t.intermediate_values) == [0, 1] for t in trials[:2])  # every epoch
    value = pruned.intermediate_values[0]
    assert value > trials[0].intermediate_values[0]

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(pruned.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert run.data.tags["pruned_at_epoch"] == "1"
    history = client.get_metric_history(run.info.run_id, "epoch_val_loss")
    assert [m.step for m in history] == [0] and history[0].value == pytest.approx(value)
    assert "test_accuracy" not in run.data.metrics  # evaluation skipped
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "notebook")}
    assert "notebook/train.ipynb" in arts
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"notebook", "provenance"}  # no model
    for complete in trials[:2]:
        finished = client.get_run(complete.user_attrs["mlflow_run_id"])
        assert finished.info.status == "FINISHED" and "pruned_at_epoch" not in finished.data.tags

    notebook = nbformat.read(run_dir / "trials" / "trial-002" / "train.ipynb", as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if
              o.output_type == "error"]  # fmt: skip
    line = (
        f"trial 2 pruned at epoch 1: val_loss {value:.4g} worse than the median pruner's "
        "threshold; evaluation and export skipped"
    )
    assert [(e.ename, e.traceback) for e in errors] == [("TrialPruned", [line])]
    stopped_at = next(i for i, c in enumerate(notebook.cells) if errors[0] in c.get("outputs", []))
    later = [c for c in notebook.cells[stopped_at + 1 :] if c.cell_type == "code"]
    assert later and not any(c.outputs for c in later)  # evaluation and export did not run
    assert "An Exception was encountered" not in json.dumps(notebook)  # no error banner
    assert not (run_dir / "trials" / "trial-002" / "model" / "model.keras").exists()

    scraps = {k: v.data for k, v in sb.read_notebook(str(run_dir / "tune.ipynb")).scraps.items()}
    assert (scraps["n_complete"], scraps["n_pruned"]) == (2, 1)
    parent = scraps["mlflow_run_id"]
    assert client.get_run(parent).data.metrics["n_pruned"] == 1
    parent_arts = {a.path for a in client.list_artifacts(parent, "study")}
    assert {"study/learning_curves.png", "study/history.png", "study/trials.csv"} <= parent_arts
    assert "study/study.journal" not in parent_arts
    logged = (tmp_path / "logs" / "info.log").read_text()
    assert '"lib.tuning.loop", "message": "trial 2 pruned at epoch 1, after' in logged
    assert kernels_gone(tmp_path)


def test_two_tune_processes_with_a_pruner_on_one_storage_end_with_exactly_n_trials(tmp_path, data):
    storage = str(tmp_path / "journal.log")
    # One trial to start pruning from: the hopeless trial (the third, enqueued) starts only
    # once a process has finished one of the first two, whichever process takes it.
    pruner = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    settings = _settings(data, storage=storage, study_name="shared", n_trials=4, pruner=pruner)
    procs = [
        subprocess.Popen(
            _args(tmp_path, settings, f"run{i}"),
            cwd=ROOT,
            env=tune_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    study = optuna.load_study(study_name="shared", storage=tuning.open_storage(storage))
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert TrialState.PRUNED in {t.state for t in finished}  # the hopeless trial
    others = {t.state for t in study.trials} - {TrialState.COMPLETE, TrialState.PRUNED}
    assert others <= {TrialState.WAITING}  # surplus: asked in a race, put back
    per_process = [
        {int(p.name.split("-")[1]) for p in (tmp_path / f"run{i}" / "trials").glob("trial-*")}
        for i in range(2)
    ]
    assert not per_process[0] & per_process[1]  # no trial ran twice
    assert per_process[0] | per_process[1] == {t.number for t in finished}
    assert kernels_gone(tmp_path)
