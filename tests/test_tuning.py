"""lib.tuning without notebooks: the search space and configuration checks, the storage,
and the trial loop (exact trial counts, failures, resume, several processes) driven by a
trivial trial function. Runs in seconds."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lib import tuning
from lib.tuning import TrialOutcome, TuningConfigError

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {
    "sampler": {"name": "tpe", "seed": 123},
    "directions": ["minimize", "maximize"],
    "study_name": "sentiment-classification",
    "storage": None,
    "n_trials": 3,
    "n_jobs": 1,
    "search_space": {
        "val_split": {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025},
        "optimiser": {"type": "categorical", "choices": ["adam", "rmsprop"]},
    },
}


def config(**params):
    return tuning.load_config(params)


def fake_trial(number, sampled):
    """Objectives from the sampled values: quick and deterministic."""
    split = sampled["val_split"]
    return TrialOutcome(scraps={"val_loss": split, "val_accuracy": 1 - split, "x": number})


# --- the reference configuration -------------------------------------------------------


def test_conf_hptuning_is_the_reference_setup():
    assert yaml.safe_load((ROOT / "conf" / "hptuning.yml").read_text()) == REFERENCE


def test_defaults_come_from_the_config_file():
    cfg = tuning.load_config({})
    assert cfg.sampler == {"name": "tpe", "seed": 123}
    assert cfg.directions == ["minimize", "maximize"]
    assert cfg.objectives == ["val_loss", "val_accuracy"]
    assert (cfg.study_name, cfg.storage, cfg.n_trials, cfg.n_jobs) == (
        "sentiment-classification",
        None,
        3,
        1,
    )
    split, optimiser = cfg.search_space["val_split"], cfg.search_space["optimiser"]
    assert (split.type, split.low, split.high, split.step) == ("float", 0.2, 0.35, 0.025)
    assert split.grid() == [0.2, 0.225, 0.25, 0.275, 0.3, 0.325, 0.35]
    assert optimiser.choices == ("adam", "rmsprop")


def test_parameters_override_the_file_and_another_file_can_be_named(tmp_path):
    other = tmp_path / "mine.yml"
    other.write_text("n_trials: 9\nstudy_name: mine\n")
    cfg = tuning.load_config({"n_jobs": 2}, config_file=other)
    assert (cfg.n_trials, cfg.n_jobs, cfg.study_name) == (9, 2, "mine")
    assert cfg.sampler == {"name": "tpe", "seed": 123}  # DEFAULTS fill what the file lacks
    cfg = tuning.load_config({"study_name": "x", "storage": "memory"}, config_file=other)
    assert (cfg.study_name, cfg.storage) == ("x", None)


def test_parameters_given_as_strings_as_polyaxon_passes_them():
    cfg = config(
        search_space='{"bs": {"type": "int", "low": 16, "high": 64, "step": 16}}',
        directions="[maximize]",
        objectives='["val_accuracy"]',
        train_params="{epochs: 2}",
        n_trials="4",
    )
    assert cfg.search_space["bs"].grid() == [16, 32, 48, 64]
    assert (cfg.directions, cfg.objectives, cfg.n_trials) == (["maximize"], ["val_accuracy"], 4)
    assert cfg.train_params == {"epochs": 2}


# --- search space ----------------------------------------------------------------------


def test_all_supported_types():
    space = tuning.parse_search_space(
        {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "bs": {"type": "int", "low": 32, "high": 512, "log": True},
            "epochs": {"type": "int", "low": 1, "high": 5},
            "val_split": {"type": "float", "low": 0.1, "high": 0.3},
            "model_name": {"type": "categorical", "choices": ["nbngram"]},
        }
    )
    study = optuna.create_study()
    trial = study.ask()
    values = tuning.sample(trial, space)
    assert 1e-4 <= values["learning_rate"] <= 1e-1 and 32 <= values["bs"] <= 512
    assert isinstance(values["epochs"], int) and values["model_name"] == "nbngram"
    assert space["learning_rate"].edge_values() == [1e-4, 1e-1]
    assert space["epochs"].grid() == [1, 2, 3, 4, 5] and space["val_split"].grid() is None


@pytest.mark.parametrize(
    "spec, key, words",
    [
        ({"type": "floaty", "low": 0, "high": 1}, "search_space.p.type", "unknown type 'floaty'"),
        ({"low": 0, "high": 1}, "search_space.p.type", "unknown type None"),
        ({"type": "float", "low": 0.5, "high": 0.1}, "search_space.p.low", "above high"),
        ({"type": "int", "low": 5, "high": 1}, "search_space.p.low", "above high"),
        (
            {"type": "float", "low": 0.2, "high": 0.35, "step": 0.04},
            "search_space.p.step",
            "does not fit the range",
        ),
        ({"type": "int", "low": 1, "high": 10, "step": 4}, "search_space.p.step", "does not fit"),
        ({"type": "int", "low": 1, "high": 10, "step": 0}, "search_space.p.step", "positive"),
        ({"type": "int", "low": 1.5, "high": 10}, "search_space.p.low", "not an integer"),
        ({"type": "float", "low": "a", "high": 1}, "search_space.p.low", "not a number"),
        ({"type": "float", "high": 1}, "search_space.p.low", "missing"),
        (
            {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1},
            "search_space.p.step",
            "step and log",
        ),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "search_space.p.low", "above 0"),
        ({"type": "float", "low": 0, "high": 1, "stpe": 0.1}, "search_space.p.stpe", "unknown key"),
        ({"type": "categorical", "choices": []}, "search_space.p.choices", "non-empty list"),
        ({"type": "categorical", "choices": ["a", "a"]}, "search_space.p.choices", "duplicates"),
        ({"type": "categorical", "choices": [[1, 2]]}, "search_space.p.choices", "not allowed"),
        ("0.1..0.3", "search_space.p", "not a mapping"),
    ],
)
def test_bad_search_space_entries_name_the_key(spec, key, words):
    with pytest.raises(TuningConfigError) as info:
        tuning.parse_search_space({"p": spec})
    assert info.value.key == key
    assert words in str(info.value) and str(info.value).startswith(key)


def test_an_empty_search_space_is_refused():
    with pytest.raises(TuningConfigError, match="^search_space: "):
        config(search_space={})


# --- configuration checks --------------------------------------------------------------


@pytest.mark.parametrize(
    "params, key, words",
    [
        ({"directions": ["minimize"]}, "objectives", "1 directions"),
        ({"objectives": ["val_loss"]}, "objectives", "give one direction per objective"),
        ({"directions": ["minimise", "maximize"]}, "directions[0]", "not one of"),
        (
            {"objectives": ["val_loss", "val_f1"]},
            "objectives[1]",
            "does not glue 'val_f1'",
        ),
        (
            {"objectives": ["val_loss", "val_auc"]},
            "objectives[1]",
            "does not glue 'val_auc'",
        ),
        ({"objectives": ["val_loss", "val_loss"]}, "objectives", "twice"),
        (
            {"search_space": {"dropout": {"type": "float", "low": 0, "high": 0.5}}},
            "search_space.dropout",
            "not a parameter of the train notebook",
        ),
        (
            {"search_space": {"epochs.x": {"type": "int", "low": 1, "high": 2}}},
            "search_space.epochs.x",
            "not a mapping parameter",
        ),
        (
            {"search_space": {"model_dir": {"type": "categorical", "choices": ["a"]}}},
            "search_space.model_dir",
            "cannot be searched",
        ),
        (
            {"search_space": {"mlflow_autolog": {"type": "categorical", "choices": [True]}}},
            "search_space.mlflow_autolog",
            "MLflow settings",
        ),
        ({"train_params": {"epoch": 1}}, "train_params.epoch", "not a parameter"),
        ({"train_params": {"model_dir": "x"}}, "train_params.model_dir", "cannot be set"),
        (
            {"train_params": {"optimiser": "adam"}},
            "search_space.optimiser",
            "also fixed in train_params",
        ),
        ({"train_params": {"api_key": "x"}}, "train_params", "looks like a secret"),
        ({"n_trials": 0}, "n_trials", "integer >= 1"),
        ({"n_jobs": "two"}, "n_jobs", "integer >= 1"),
        ({"max_failures": 0}, "max_failures", "integer >= 1"),
        ({"grace_period": 10, "heartbeat_interval": 10}, "grace_period", "must exceed"),
        ({"sampler": {"name": "annealing"}}, "sampler.name", "unknown sampler 'annealing'"),
        ({"sampler": {"name": "tpe", "sed": 1}}, "sampler.sed", "not an argument of TPESampler"),
        ({"study_name": " "}, "study_name", "must not be empty"),
        ({"storage": 5}, "storage", "not a URL"),
        ({"enqueue_trials": [{"bs": 3}]}, "enqueue_trials[0].bs", "not a name"),
        ({"enqueue_trials": [{"val_split": 0.9}]}, "enqueue_trials[0].val_split", "outside"),
    ],
)
def test_bad_configuration_names_the_key(params, key, words):
    with pytest.raises(TuningConfigError) as info:
        config(**params)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)


def test_objectives_follow_the_metric_and_the_reference_test_objectives_are_allowed():
    cfg = config(objectives=["test_loss", "test_accuracy"])
    assert cfg.objectives == ["test_loss", "test_accuracy"]
    cfg = config(objectives=["val_loss", "val_auc"], train_params={"metric": "auc"})
    assert cfg.objectives == ["val_loss", "val_auc"]
    cfg = config(directions=["minimize"], objectives=["train_seconds"])
    assert cfg.objectives == ["train_seconds"]
    with pytest.raises(TuningConfigError, match=r"objectives\[1\].*does not glue 'val_auc'"):
        config(
            objectives=["val_loss", "val_auc"],
            search_space={"metric": {"type": "categorical", "choices": ["auc", "recall"]}},
        )


def test_dotted_names_set_one_key_of_a_mapping_parameter(tmp_path):
    cfg = config(
        search_space={
            "model_params.ngram_max": {"type": "int", "low": 1, "high": 3},
            "optimiser": {"type": "categorical", "choices": ["adam"]},
        },
        train_params={"model_params": {"max_tokens": 1000}, "epochs": 1, "mlflow_tags": {"a": 1}},
        mlflow_exp_name="exp",
    )
    params = tuning.trial_params(
        cfg,
        7,
        {"model_params.ngram_max": 2, "optimiser": "adam"},
        trial_dir=tmp_path / "trial-007",
        parent_run_id="parent",
        hptuning_tag="1641159546",
    )
    assert params["model_params"] == {"max_tokens": 1000, "ngram_max": 2}
    assert cfg.train_params["model_params"] == {"max_tokens": 1000}  # not changed in place
    assert params["epochs"] == 1 and params["optimiser"] == "adam"
    assert params["model_dir"] == str(tmp_path / "trial-007" / "model")
    assert params["mlflow_parent_run_id"] == "parent" and params["mlflow_run_name"] == "trial-7"
    assert params["mlflow_tags"] == {"a": 1, "study_name": cfg.study_name, "trial_number": "7"}
    assert params["hptuning_tag"] == "1641159546" and params["mlflow_exp_name"] == "exp"
    assert params["setup_mlflow"] is True


def test_mlflow_settings_in_train_params_win_over_the_tune_parameters():
    cfg = tuning.load_config(
        {"mlflow_exp_name": "a", "train_params": {"mlflow_exp_name": "b", "setup_mlflow": False}}
    )
    assert (cfg.mlflow_exp_name, cfg.setup_mlflow) == ("b", False)


def test_the_preflight_cases_try_every_end_of_the_ranges(tmp_path):
    cfg = config(train_params={"epochs": 1})
    cases = tuning.preflight_cases(cfg, tmp_path)
    varied = [(c["varied"], c["sampled"]) for c in cases]
    assert varied == [
        (None, {"val_split": 0.2, "optimiser": "adam"}),
        ("val_split", {"val_split": 0.35, "optimiser": "adam"}),
        ("optimiser", {"val_split": 0.2, "optimiser": "rmsprop"}),
    ]
    params = cases[0]["params"]
    assert params["epochs"] == 1 and params["bs"] == 256  # the train notebook's defaults


def test_numeric_scraps_match_what_the_train_notebook_glues():
    cells = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4).cells
    source = "\n".join(c.source for c in cells)
    assert 'f"val_{k}"' in source and 'f"test_{k}"' in source and '"train_seconds"' in source
    assert tuning.numeric_scraps("auc") == {
        "val_loss",
        "val_accuracy",
        "val_auc",
        "test_loss",
        "test_accuracy",
        "test_auc",
        "train_seconds",
    }


# --- storage ---------------------------------------------------------------------------


def test_an_unreachable_storage_is_a_clear_error_before_anything_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for storage, words in [
        (f"sqlite:///{blocker}/sub/optuna.db", "cannot create"),
        (f"{blocker}/journal.log", "cannot open the journal file"),
        ("postgresql://optuna:pw@127.0.0.1:9/optuna", "storage: "),
        ("nosuchdb://host/x", "cannot use the Optuna storage"),
    ]:
        cfg = config(storage=storage)
        with pytest.raises(TuningConfigError) as info:
            tuning.open_study(cfg)
        assert info.value.key == "storage" and words in str(info.value), str(info.value)
        assert "pw" not in str(info.value)  # passwords stay out of messages


def test_a_resumed_study_must_keep_its_directions_and_objectives(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tuning.open_study(config(storage=storage))
    with pytest.raises(TuningConfigError, match="^directions: .*differ"):
        tuning.open_study(config(storage=storage, directions=["maximize", "maximize"]))
    with pytest.raises(TuningConfigError, match="^objectives: .*differ"):
        tuning.open_study(config(storage=storage, objectives=["test_loss", "test_accuracy"]))


# --- the trial loop --------------------------------------------------------------------


@pytest.mark.parametrize("storage", [None, "sqlite", "journal"])
def test_the_loop_runs_exactly_n_trials_in_parallel(tmp_path, storage):
    storage = {
        None: None,
        "sqlite": f"sqlite:///{tmp_path / 'optuna.db'}",
        "journal": str(tmp_path / "journal.log"),
    }[storage]
    cfg = config(storage=storage, n_trials=7, n_jobs=3, hptuning_tag="tag-1")
    handle = tuning.open_study(cfg)
    assert handle.created and handle.hptuning_tag == "tag-1"
    concurrent, peak = [], [0]

    def slow_trial(number, sampled):
        concurrent.append(number)
        peak[0] = max(peak[0], len(concurrent))
        time.sleep(0.1 + 0.1 * (number % 2))
        concurrent.remove(number)
        return fake_trial(number, sampled)

    run = tuning.run_study(handle.study, cfg, slow_trial, poll_interval=0.1)
    states = [t.state for t in handle.study.trials]
    assert states.count(TrialState.COMPLETE) == 7 and run.stopped is None
    assert sorted(run.ran) == list(range(7)) and peak[0] == 3
    table = tuning.trials_table(handle.study, cfg.objectives)
    assert list(table["state"]) == ["COMPLETE"] * 7
    assert {"val_loss", "val_accuracy", "params.val_split", "params.optimiser"} <= set(table)
    best = tuning.best_trials(handle.study, cfg.objectives)
    assert best and all(set(b) >= {"number", "params", "values", "model_uri"} for b in best)


def test_a_failing_trial_is_recorded_and_the_study_goes_on():
    cfg = config(n_trials=3, max_failures=2)
    handle = tuning.open_study(cfg)

    def sometimes_failing(number, sampled):
        if number == 1:
            return TrialOutcome(error="cell 5: ValueError: boom", user_attrs={"notebook": "x"})
        if number == 2:
            raise RuntimeError("a bug in the trial function")
        return fake_trial(number, sampled)

    run = tuning.run_study(handle.study, cfg, sometimes_failing, poll_interval=0.05)
    trials = handle.study.trials
    assert run.failed == [1, 2] and run.stopped and "max_failures=2" in run.stopped
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["error"] == "cell 5: ValueError: boom"
    assert trials[1].user_attrs["notebook"] == "x"
    assert "RuntimeError: a bug" in trials[2].user_attrs["error"]
    with pytest.raises(tuning.TuningError, match="2 trials failed"):
        run.raise_if_stopped()

    cfg = config(n_trials=3, max_failures=3)
    handle = tuning.open_study(cfg)
    run = tuning.run_study(handle.study, cfg, sometimes_failing, poll_interval=0.05)
    states = [t.state for t in handle.study.trials]
    assert run.stopped is None and states.count(TrialState.COMPLETE) == 3
    assert states.count(TrialState.FAIL) == 2


def test_a_missing_or_bad_objective_fails_the_trial():
    assert tuning.objective_values({"a": 1}, ["b"]) == (
        None,
        "the train notebook did not glue the objective 'b'",
    )
    assert "not a finite number" in tuning.objective_values({"a": float("nan")}, ["a"])[1]
    assert tuning.objective_values({"a": 1, "b": 0.5}, ["a", "b"]) == ([1.0, 0.5], None)


def test_enqueued_trials_run_first_with_their_values():
    cfg = config(n_trials=2, enqueue_trials=[{"val_split": 0.35, "optimiser": "rmsprop"}])
    handle = tuning.open_study(cfg)
    tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.05)
    assert handle.study.trials[0].params == {"val_split": 0.35, "optimiser": "rmsprop"}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_asked_in_a_race_is_surplus_pruned_and_never_run(tmp_path):
    """Between this process's check and its ask, another process took the last free place
    (a lower-numbered RUNNING trial): the new trial is told PRUNED, marked surplus, and not
    run; the loop then waits for the other trial and ends with exactly n_trials."""
    import threading

    cfg = config(storage=f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=2)
    study = tuning.open_study(cfg).study
    first = study.ask()
    tuning.sample(first, cfg.search_space)
    study.tell(first, [0.3, 0.7])
    original_ask, other = study.ask, []

    def racing_ask(*args, **kwargs):
        if not other:  # the other process asks first, just before us
            other.append(original_ask())
            tuning.sample(other[0], cfg.search_space)
            threading.Timer(0.5, lambda: study.tell(other[0], [0.2, 0.8])).start()
        return original_ask(*args, **kwargs)

    study.ask = racing_ask
    ran = []
    run = tuning.run_study(
        study, cfg, lambda n, s: ran.append(n) or fake_trial(n, s), poll_interval=0.05
    )
    trials = study.trials
    assert ran == [] and run.surplus == [2]
    assert trials[2].state == TrialState.PRUNED and trials[2].user_attrs["surplus"] is True
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    assert tuning.trials_table(study, cfg.objectives).loc[2, "state"] == "PRUNED (surplus)"


# --- several processes, and a killed one ----------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    from lib import tuning

    params = json.loads(sys.argv[1])
    seconds = float(sys.argv[2])
    cfg = tuning.load_config(params)
    handle = tuning.open_study(cfg)

    def trial(number, sampled):
        print("start", number, flush=True)
        time.sleep(seconds)
        split = sampled["val_split"]
        return tuning.TrialOutcome(scraps={{"val_loss": split, "val_accuracy": 1 - split}})

    run = tuning.run_study(handle.study, cfg, trial, poll_interval=0.2)
    print("ran", json.dumps(run.ran), flush=True)
    """
)


def _spawn(tmp_path, params, seconds):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    import json

    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(params), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_DIR": str(tmp_path / "logs")},
    )


def _storage(tmp_path, kind):
    return f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite" else str(tmp_path / "j.log")


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_on_one_storage_end_with_exactly_n_trials(tmp_path, kind):
    params = {"storage": _storage(tmp_path, kind), "n_trials": 5, "study_name": "shared"}
    procs = [_spawn(tmp_path, params, 0.3) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ran = [sorted(__import__("json").loads(o[0].splitlines()[-1].split(" ", 1)[1])) for o in outs]
    assert ran[0] and ran[1], ran  # both did work
    study = optuna.load_study(
        study_name="shared", storage=tuning.open_storage(params["storage"], 30, 120)
    )
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 5
    complete = sorted(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert sorted(ran[0] + ran[1]) == complete  # nobody ran a trial twice


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_study_resumes_and_retries_its_running_trial(tmp_path, kind):
    params = {
        "storage": _storage(tmp_path, kind),
        "n_trials": 3,
        "study_name": "resumable",
        "heartbeat_interval": 1,
        "grace_period": 2,
    }
    proc = _spawn(tmp_path, params, 1.0)
    started = []
    deadline = time.monotonic() + 60
    while len(started) < 2 and time.monotonic() < deadline:  # trial 0 done, trial 1 running
        line = proc.stdout.readline()
        if line.startswith("start"):
            started.append(int(line.split()[1]))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert started == [0, 1]

    cfg = tuning.load_config(params)
    handle = tuning.open_study(cfg)
    assert not handle.created
    before = {t.number: t for t in handle.study.trials}
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING
    run = tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.2)
    trials = handle.study.trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and trials[1].state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 1)
    assert retry.state == TrialState.COMPLETE and retry.params == before[1].params
    assert 0 not in run.ran  # the completed trial was not run again
    table = tuning.trials_table(handle.study, cfg.objectives)
    assert table.loc[retry.number, "retry_of"] == 1


def test_the_default_kernel_memory_limit_shares_the_memory_between_kernels():
    limit = tuning.memory_limit_mib()
    assert 0 < tuning.default_kernel_rss_mib(2) < tuning.default_kernel_rss_mib(1) < limit


def test_summaries_for_one_and_two_objectives(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    one = config(directions=["maximize"], objectives=["val_accuracy"], n_trials=4)
    two = config(n_trials=4)
    for cfg, title in ((one, "Optimisation history"), (two, "Pareto front")):
        handle = tuning.open_study(cfg)
        tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.05)
        figure = tuning.plot_study(handle.study, cfg.objectives)
        assert figure.axes[0].get_title() == title
        figure.savefig(tmp_path / "plot.png")
        importances = tuning.param_importances(handle.study, cfg.objectives)
        assert list(importances.columns) == cfg.objectives
        assert set(importances.index) == {"val_split", "optimiser"}
        assert tuning.plot_importances(importances) is not None
        best = tuning.best_trials(handle.study, cfg.objectives)
        assert best and set(best[0]["values"]) == set(cfg.objectives)
    assert len(best) >= 1 and all(b["number"] in range(4) for b in best)
    single = tuning.best_trials(tuning.open_study(one).study, one.objectives)
    assert single == []  # no completed trial yet: nothing is best
