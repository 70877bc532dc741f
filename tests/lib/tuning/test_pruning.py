"""lib.tuning.pruning: the pruner configuration and its errors, storage URLs without
passwords, and the trial kernel's side (a real Keras fit reporting to a real study in a
journal file, pruned, then stopped with one line)."""

import sys

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lib import tuning
from lib.core.errors import ParameterError
from lib.tuning import pruning
from tests.support.tuning import config

ONE_OBJECTIVE = {"objectives": ["val_loss"], "directions": ["minimize"]}


def test_no_pruner_by_default_and_the_other_defaults():
    cfg = config()
    assert (cfg.pruner, cfg.prune_on, cfg.trial_timeout_s) == (None, "val_loss", None)
    assert cfg.summary()["pruner"] is None
    assert (
        tuning.trial_params(cfg, 0, {}, trial_dir="x", parent_run_id=None, hptuning_tag=None)[
            "tuning_trial"
        ]
        is None
    )
    assert config(trial_timeout_s="300").trial_timeout_s == 300


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("none", None),
        ({"name": "None"}, None),
        ("median", {"name": "median"}),
        ('{"name": "Median", "n_startup_trials": 2}', {"name": "median", "n_startup_trials": 2}),
        ({"name": "hyperband", "min_resource": 1}, {"name": "hyperband", "min_resource": 1}),
    ],
)
def test_pruner_settings_are_read_as_a_name_and_its_arguments(value, expected):
    cfg = config(pruner=value, **ONE_OBJECTIVE)
    assert cfg.pruner == expected
    if expected:
        cls = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner}
        assert isinstance(pruning.make_pruner(cfg.pruner), cls[expected["name"]])


@pytest.mark.parametrize(
    "params, key, words",
    [
        ({"pruner": {"name": "patient"}}, "pruner.name", "unknown pruner 'patient'; known: median"),
        ({"pruner": {"n_startup_trials": 2}}, "pruner.name", "missing"),
        ({"pruner": {"name": "median", "warmup": 1}}, "pruner.warmup", "not an argument of"),
        ({"pruner": {"name": "percentile"}}, "pruner", "PercentilePruner refuses"),
        ({"pruner": {"name": "median", "n_startup_trials": -1}}, "pruner", "refuses"),
        ({"pruner": "median", "prune_on": "test_loss"}, "prune_on", "not an epoch metric"),
        ({"pruner": "median", "prune_on": "val_accuracy"}, "prune_on", "maximized but"),
        ({"pruner": "median", "prune_on": "val_auc"}, "prune_on", "val_accuracy, val_loss"),
        ({"pruner": [1]}, "pruner", "not a mapping"),
    ],
)
def test_bad_pruner_settings_name_the_key(params, key, words):
    with pytest.raises(ParameterError) as info:
        config(**{**ONE_OBJECTIVE, **params})
    assert info.value.name == key, str(info.value)
    assert words in str(info.value), str(info.value)


def test_prune_on_follows_the_metric_and_the_direction():
    auc = config(
        pruner="median",
        prune_on="val_auc",
        objectives=["val_auc"],
        directions=["maximize"],
        train_params={"metric": "auc"},
    )
    assert auc.prune_on == "val_auc"
    assert config(pruner="median", prune_on="loss", **ONE_OBJECTIVE).prune_on == "loss"
    with pytest.raises(ParameterError, match="^prune_on: .*minimized but the study's objective"):
        config(pruner="median", objectives=["val_accuracy"], directions=["maximize"])


def test_a_pruner_with_two_objectives_is_refused_before_any_trial():
    with pytest.raises(ParameterError) as info:
        config(pruner={"name": "median"})  # the reference set-up has two objectives
    message = str(info.value)
    assert info.value.name == "pruner" and "2 (directions ['minimize', 'maximize'])" in message
    assert "Trial.report raises for multi-objective studies" in message
    assert "tune one objective" in message and "pruner: null" in message
    assert config(pruner="none").pruner is None  # no pruning: two objectives are fine


def test_storage_placeholders_are_expanded_only_when_the_storage_is_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DIR", str(tmp_path))
    cfg = config(storage="${STUDY_DIR}/journal.log", pruner="median", **ONE_OBJECTIVE)
    assert cfg.storage == "${STUDY_DIR}/journal.log"
    handle = tuning.open_study(cfg)
    assert (tmp_path / "journal.log").is_file() and handle.study.metric_names == ["val_loss"]
    assert cfg.trial_storage == "${STUDY_DIR}/journal.log"  # what the trials get, unexpanded
    monkeypatch.delenv("STUDY_DIR")
    with pytest.raises(ParameterError, match=r"^storage: \$\{STUDY_DIR\} .*\$STUDY_DIR is not set"):
        tuning.open_storage("${STUDY_DIR}/journal.log")


def test_an_expanded_password_stays_out_of_the_storage_error(monkeypatch):
    monkeypatch.setenv("OPTUNA_DB_PW", "hunter2-pw")
    url = "postgresql://optuna:${OPTUNA_DB_PW}@127.0.0.1:9/optuna"
    assert config(storage=url).storage == url
    with pytest.raises(ParameterError) as info:
        tuning.open_storage(url)
    assert "hunter2" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_storage_null_with_a_pruner_keeps_the_study_in_a_journal_in_the_run_folder(tmp_path):
    cfg = config(pruner="median", **ONE_OBJECTIVE)
    handle = tuning.open_study(cfg, run_dir=tmp_path)
    journal = tmp_path / "study" / "study.journal"
    assert cfg.trial_storage == str(journal) and journal.is_file()
    params = tuning.trial_params(
        cfg, 4, {}, trial_dir=tmp_path / "t", parent_run_id=None, hptuning_tag=None
    )
    assert params["tuning_trial"] == {
        "study_name": cfg.study_name,
        "storage": str(journal),
        "trial_number": 4,
        "pruner": {"name": "median"},
        "prune_on": "val_loss",
    }
    assert cfg.storage is None  # still a study of this run only: nothing to resume
    assert "nothing to resume" in tuning.loop.resume_hint(handle.study, cfg)
    assert tuning.open_study(config(), run_dir=tmp_path).study  # no pruner: in memory


def _study_with_two_good_trials(tmp_path):
    cfg = config(
        storage=str(tmp_path / "journal.log"),
        pruner={"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        **ONE_OBJECTIVE,
    )
    study = tuning.open_study(cfg).study
    for _ in range(2):  # two finished trials whose val_loss was tiny at every epoch
        trial = study.ask()
        tuning.sample(trial, cfg.search_space)
        for epoch in range(3):
            trial.report(1e-4, epoch)
        study.tell(trial, 1e-4)
    return cfg, study


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_reporter_prunes_a_real_fit_and_the_notebook_stops_with_one_line(tmp_path):
    import keras

    cfg, study = _study_with_two_good_trials(tmp_path)
    running = study.ask()  # what the tune asked; the kernel reports to it by number
    tuning.sample(running, cfg.search_space)
    spec = tuning.trial_params(
        cfg, running.number, {}, trial_dir=tmp_path, parent_run_id=None, hptuning_tag=None
    )["tuning_trial"]
    reporter = pruning.reporter(spec)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = np.linspace(0, 1, 16).reshape(-1, 1), np.tile([0.0, 1.0], 8)
    history = model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=[reporter])
    assert len(history.history["val_loss"]) == 1  # stopped after the first epoch
    assert reporter.pruned_at == 1
    reported = study.trials[running.number]
    assert reported.intermediate_values == {0: pytest.approx(history.history["val_loss"][0])}
    assert reported.state == TrialState.RUNNING  # the tune tells it, from the scrap

    with pytest.raises(optuna.exceptions.TrialPruned) as info:
        pruning.stop_if_pruned(reporter)
    error = info.value
    assert type(error).__name__ == pruning.PRUNED_ERROR == "TrialPruned"
    assert isinstance(error, pruning.TrialPruned)
    line = f"trial 2 pruned at epoch 1: val_loss {reporter.value:.4g} worse than the median "
    assert error._render_traceback_() == [
        line + "pruner's threshold; evaluation and export skipped"
    ]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_the_pruner_keeps_runs_to_its_end(tmp_path):
    import keras

    cfg = config(storage=str(tmp_path / "j.log"), pruner="median", **ONE_OBJECTIVE)
    study = tuning.open_study(cfg).study
    trial = study.ask()
    spec = tuning.trial_params(
        cfg, trial.number, {}, trial_dir=tmp_path, parent_run_id=None, hptuning_tag=None
    )["tuning_trial"]
    reporter = pruning.reporter(spec)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 1))
    model.fit(x, x, validation_data=(x, x), epochs=3, verbose=0, callbacks=[reporter])
    assert sorted(study.trials[0].intermediate_values) == [0, 1, 2]  # every epoch reported
    assert reporter.pruned_at is None
    pruning.stop_if_pruned(reporter)  # not pruned: nothing happens
    pruning.stop_if_pruned(None)  # not a tuning trial
    assert pruning.reporter(None) is None
    bad = pruning.reporter({**spec, "prune_on": "val_auc"})
    with pytest.raises(ParameterError, match="^prune_on: 'val_auc' is not among"):
        model.fit(x, x, validation_data=(x, x), epochs=1, verbose=0, callbacks=[bad])


def test_importing_the_module_imports_neither_optuna_nor_keras():
    import subprocess

    code = (
        "import sys; from lib.tuning import pruning, PRUNED_SCRAP, PRUNED_ERROR; "
        "print(sorted(m for m in ('optuna', 'keras', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
