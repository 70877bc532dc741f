"""lib.tuning.storage: samplers, the storages a study may live in, and the journal
storage's heartbeat (which Optuna's JournalStorage lacks)."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from lib import tuning
from lib.core.errors import ParameterError
from lib.tuning import attrs, storage
from tests.support.tuning import config


@pytest.mark.parametrize(
    "spec, key, words",
    [
        ({"name": "annealing"}, "sampler.name", "unknown sampler 'annealing'"),
        ({"name": "tpe", "sed": 1}, "sampler.sed", "not an argument of TPESampler"),
        ({"name": "grid", "search_space": {}}, "sampler.search_space", "not an argument"),
        ({"name": "random", "seed": "x"}, "sampler", "RandomSampler refuses"),
    ],
)
def test_bad_sampler_settings_name_the_key(spec, key, words):
    space = config().search_space
    with pytest.raises(ParameterError) as info:
        storage.make_sampler(spec, space)
    assert info.value.name == key and words in str(info.value), str(info.value)


def test_samplers_are_made_with_their_arguments_and_the_grid_from_the_space():
    space = config().search_space
    tpe = storage.make_sampler({"name": "TPE", "seed": 123}, space)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    grid = storage.make_sampler({"name": "grid"}, space)
    assert isinstance(grid, optuna.samplers.GridSampler)
    loose = tuning.parse_search_space({"val_split": {"type": "float", "low": 0.1, "high": 0.3}})
    with pytest.raises(ParameterError, match="^search_space.val_split: the grid sampler needs"):
        storage.make_sampler({"name": "grid"}, loose)


def test_an_unreachable_storage_is_a_clear_error_before_anything_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for url, words in [
        (f"sqlite:///{blocker}/sub/optuna.db", "cannot create"),
        (f"{blocker}/journal.log", "cannot open the journal file"),
        ("postgresql://optuna:pw@127.0.0.1:9/optuna", "storage: "),
        ("nosuchdb://host/x", "cannot use the Optuna storage"),
    ]:
        with pytest.raises(ParameterError) as info:
            storage.open_storage(url)
        assert info.value.name == "storage" and words in str(info.value), str(info.value)
        assert "pw" not in str(info.value)  # passwords stay out of messages
        assert "\n" not in str(info.value)  # one line


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_relative_storage_path_is_taken_from_the_project_root(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    url = "sqlite:///sub/optuna.db" if kind == "sqlite" else "sub/journal.log"
    optuna.create_study(storage=storage.open_storage(url), study_name="s")
    assert (tmp_path / "sub" / ("optuna.db" if kind == "sqlite" else "journal.log")).is_file()


def test_the_memory_storage_keeps_no_heartbeat():
    study = optuna.create_study(storage=storage.open_storage(None))
    trial = study.ask()
    assert storage.heartbeat_interval(study) is None
    storage.record_heartbeat(study, trial)  # nothing to record, and no error
    assert storage.retried_trial(study, trial) is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_whose_heartbeat_stopped_is_failed_and_retried(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite" else str(tmp_path / "j.log")
    study = optuna.create_study(storage=storage.open_storage(url, 1, 2), study_name="beats")
    assert storage.heartbeat_interval(study) == 1
    alive, dead = study.ask(), study.ask()
    for trial in (alive, dead):
        trial.suggest_float("x", 0, 1)
        storage.record_heartbeat(study, trial)
    if kind == "journal":  # dead's last heartbeat: an hour ago (our heartbeat's attribute)
        study._storage.set_trial_system_attr(
            dead._trial_id, attrs.HEARTBEAT_ATTR, time.time() - 3600
        )
    else:  # Optuna's own heartbeat table: wait until dead is past its grace period
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and study.trials[dead.number].state == TrialState.RUNNING:
            storage.record_heartbeat(study, alive)  # only alive beats on
            time.sleep(0.5)
            storage.fail_stale_trials(study)
    storage.fail_stale_trials(study)
    trials = study.trials
    assert trials[dead.number].state == TrialState.FAIL
    if kind == "journal":
        assert trials[alive.number].state == TrialState.RUNNING
    retry = study.ask()  # the retry, enqueued with the dead trial's parameters
    assert storage.retried_trial(study, retry) == dead.number
    assert retry.params == trials[dead.number].params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
@pytest.mark.parametrize("kind", [None, "sqlite", "journal"])
def test_a_trial_asked_and_not_run_goes_back_to_waiting_with_its_parameters(tmp_path, kind):
    url = {None: None, "sqlite": f"sqlite:///{tmp_path / 'o.db'}", "journal": str(tmp_path / "j")}
    study = optuna.create_study(storage=storage.open_storage(url[kind]), study_name="back")
    trial = study.ask()
    value = trial.suggest_float("x", 0, 1)
    storage.record_heartbeat(study, trial)
    assert storage.put_back(study, trial)
    (waiting,) = study.trials
    assert waiting.state == TrialState.WAITING
    if kind == "journal":  # its old heartbeat is gone: staleness counts from its next start
        assert waiting.system_attrs[attrs.HEARTBEAT_ATTR] is None
    # Another process's ask takes it, with the value sampled before.
    other = storage.open_storage(url[kind]) if kind else study._storage
    again = optuna.load_study(study_name="back", storage=other).ask()
    assert again.number == 0 and again.suggest_float("x", 0, 1) == value
