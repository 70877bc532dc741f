"""The tune registers its best trial's model once per study (lib.tuning.registration):
the configuration's checks, the rule that picks the one process that registers, and two real
tune processes on one journal storage, then the study resumed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import mlflow
import optuna
import pytest
import scrapbook as sb
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from lib import tuning
from lib.core.errors import ParameterError
from lib.data import prep
from lib.tracking import registry
from lib.tuning import attrs, registration
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import ROOT
from tests.support.tune_runs import run_tune, tune_args, tune_env

T0 = dt.datetime(2026, 1, 1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small processed data set for two real tune processes."""
    root = tmp_path_factory.mktemp("register-tune-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=20, words=30)], root / "processed")
    return root / "processed"


def _config(**params):
    return tuning.load_config({"n_trials": 3, **params}, config_file=None)


def test_the_configuration_checks_select_and_register_model():
    config = _config()
    assert (config.register_model, config.registered_model_name) == (True, "imdb-sentiment")
    assert (config.select, config.select_direction) == ("val_loss", "minimize")
    config = _config(select="test_accuracy", registered_model_name="mine")
    assert (config.select, config.select_direction, config.registered_model_name) == (
        "test_accuracy",
        "maximize",
    ) + ("mine",)
    assert _config(select={"metric": "val_loss", "direction": "maximize"}).select_direction == (
        "maximize"
    )
    assert not _config(setup_mlflow=False).register_model  # None: only with tracking
    assert not _config(register_model=False).register_model
    cases = [
        ({"select": "val_f1"}, "select: 'val_f1' is not a number the trials record; they record"),
        ({"select": {"metric": "val_loss", "how": 1}}, "select: {'metric': 'val_loss', 'how'"),
        ({"select": {"metric": "val_loss", "direction": "up"}}, "select.direction: 'up'"),
        (
            {"register_model": True, "setup_mlflow": False},
            "register_model: True is not allowed: registering needs MLflow tracking",
        ),
        ({"registered_model_name": "a@b"}, "registered_model_name: 'a@b' is not allowed"),
        ({"train_params": {"register_model": True}}, "train_params.register_model: cannot be set"),
    ]
    for params, expected in cases:
        with pytest.raises(ParameterError) as error:
            _config(**params)
        assert expected in str(error.value), str(error.value)


def _trial(number, value, *, done_at, state=TrialState.COMPLETE, metrics=None, model=True):
    trial = create_trial(
        state=state,
        values=[value] if state == TrialState.COMPLETE else None,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={
            "model_uri": f"runs:/run{number}/model" if model else None,
            attrs.METRICS_ATTR: metrics or {},
        },
    )
    trial.datetime_start = T0
    trial.datetime_complete = T0 + dt.timedelta(seconds=done_at)
    return trial


def test_the_best_trial_and_the_one_process_that_registers():
    study = optuna.create_study(direction="minimize")
    study.add_trial(_trial(0, 0.40, done_at=5, metrics={"test_accuracy": 0.7}))
    study.add_trial(_trial(1, 0.30, done_at=9, metrics={"test_accuracy": 0.6}))
    study.add_trial(_trial(2, 0.20, done_at=7, model=False))  # no model: not a candidate
    assert registration.best_trial(study, _config()).number == 1
    by_accuracy = _config(select="test_accuracy")
    assert registration.best_trial(study, by_accuracy).number == 0
    # Trial 1 finished last: its process registers, no other; nobody before n are done.
    assert registration.registers_here(study, 3, ran=[1, 2])
    assert not registration.registers_here(study, 3, ran=[0])
    assert not registration.registers_here(study, 4, ran=[1, 2])
    study.add_trial(_trial(3, 0.1, done_at=20, state=TrialState.PRUNED))
    assert registration.registers_here(study, 4, ran=[3])  # a pruned last trial counts too


@pytest.mark.slow
def test_two_tune_processes_register_one_version_and_a_resume_none(tmp_path, data):
    storage = str(tmp_path / "journal.log")
    name = "imdb-tuned"
    extra = [
        "-r", "storage", storage, "-p", "n_trials", "3", "-r", "study_name", "shared",
        "-r", "registered_model_name", name, "-r", "select", "val_accuracy",
    ]  # fmt: skip
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
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(store, store)
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 1  # exactly one registration for the study
    version = versions[0]
    challenger = registry.resolve(name, alias=registry.CHALLENGER, tracking_uri=store)
    assert str(challenger.version) == str(version.version)

    study = optuna.load_study(study_name="shared", storage=tuning.open_storage(storage, 30, 120))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.user_attrs["metrics"]["val_accuracy"], -t.number))
    assert version.run_id == best.user_attrs["mlflow_run_id"]  # selected by val_accuracy
    assert version.tags["trial_number"] == str(best.number)
    assert version.tags["hptuning_tag"] == "shared-tag"
    assert float(version.tags["test_accuracy"]) == best.user_attrs["metrics"]["test_accuracy"]
    manifest = json.loads((data / "manifest.json").read_text())
    assert version.tags["data_fingerprint"] == manifest["fingerprint"]
    recorded = study.user_attrs[attrs.REGISTERED_ATTR]
    assert recorded == {
        "name": name,
        "version": str(version.version),
        "trial": best.number,
        "alias": "challenger",
    }
    parent = client.get_run(client.get_run(version.run_id).data.tags["mlflow.parentRunId"])
    assert parent.data.tags["registered_model_version"] == str(version.version)
    assert parent.data.tags["registered_model_trial"] == str(best.number)
    glued = [
        sb.read_notebook(str(tmp_path / f"run{i}" / "tune.ipynb")).scraps["registered_model"].data
        for i in range(2)
    ]
    assert recorded in glued  # the process that registered says so

    # Resumed: the study is complete and registered already; no second version.
    again = run_tune(tmp_path, data, *extra, out="run-again", MLFLOW_HPTUNING_TAG="shared-tag")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(client.search_model_versions(f"name='{name}'")) == 1
    scraps = sb.read_notebook(str(tmp_path / "run-again" / "tune.ipynb")).scraps
    assert scraps["registered_model"].data == recorded
