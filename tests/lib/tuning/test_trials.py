"""lib.tuning.trials: what a trial is (its parameters, the preflight cases), the backend
found through its entry point, prepare and run_trials with a backend that runs
trials in this process (registered through a real entry point of a distribution under
tmp)."""

import threading
from pathlib import Path

import pytest
from optuna.trial import TrialState

from lib import tuning
from lib.core.errors import ParameterError
from lib.tuning import backend
from lib.tuning import trials as seam
from tests.support.tuning import config, fake_trial


class RecordingBackend:
    """A TrialBackend whose trials run in this process; it keeps what was asked of it."""

    made: list["RecordingBackend"] = []

    def __init__(self, n_jobs, tracking_uri, refuse=None):
        self.n_jobs, self.tracking_uri = n_jobs, tracking_uri
        self.refuse = refuse  # what check() reports, if anything
        self.configured = self.checked = None
        self.closed = False
        self.interrupted = threading.Event()
        RecordingBackend.made.append(self)

    def configure(self, config):
        self.configured = config

    def check(self, cases):
        self.checked = cases
        for case in cases:  # as the train checks' probe of a writable model_dir does
            Path(case["params"]["model_dir"]).mkdir(parents=True, exist_ok=True)
        return self.refuse

    def trial_function(self, config, trials_dir, parent_run_id, hptuning_tag):
        self.trial_args = (trials_dir, parent_run_id, hptuning_tag)
        return fake_trial

    def interrupt(self):
        self.interrupted.set()

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def recording(tmp_path, monkeypatch):
    """``recording``: RecordingBackend, as an installed distribution declares it."""
    info = tmp_path / "site" / "recording_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: recording-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{backend.ENTRY_POINT_GROUP}]\nrecording = {__name__}:RecordingBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    RecordingBackend.made.clear()
    return "recording"


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
    assert cases[1]["params"]["val_split"] == 0.35


@pytest.mark.parametrize(
    "found, key, words",
    [
        ({"varied": "optimiser", "name": "optimiser"}, "search_space.optimiser", "'rmsprop'"),
        (
            {"varied": None, "name": "ngram_max"},
            "train_params.ngram_max (the train default)",
            "refuses it",
        ),
        ({"varied": None, "name": "epochs"}, "train_params.epochs", "refuses it"),
        ({"varied": None, "name": "model_params"}, "search_space.model_params.ngram_max", ""),
        (  # a hyperparameter, named as check_train_params names it
            {"varied": None, "name": "model_params.ngram_max"},
            "search_space.model_params.ngram_max",
            "refuses it",
        ),
        (
            {"varied": None, "name": "model_params.dropout"},
            "train_params.model_params.dropout (the train default)",
            "refuses it",
        ),
        ({"varied": None, "name": None}, "train_params", "refuses it"),
    ],
)
def test_a_refused_check_blames_the_key_to_change(tmp_path, found, key, words):
    cfg = config(
        train_params={"epochs": 1},
        search_space={
            "model_params.ngram_max": {"type": "int", "low": 1, "high": 3},
            "optimiser": {"type": "categorical", "choices": ["adam", "rmsprop"]},
        },
    )
    cases = tuning.preflight_cases(cfg, tmp_path)
    error = seam.preflight_error(cfg, cases, {**found, "error": "ParameterError: no"})
    assert error.name == key and words in str(error) and "ParameterError: no" in str(error)


def test_a_refused_case_named_by_its_index_blames_its_own_value(tmp_path):
    choices = {"optimiser": {"type": "categorical", "choices": ["adam", "rmsprop", "adamx"]}}
    cfg = config(search_space=choices)
    cases = tuning.preflight_cases(cfg, tmp_path)
    assert [c["sampled"]["optimiser"] for c in cases] == ["adam", "rmsprop", "adamx"]
    found = {"varied": "optimiser", "name": "optimiser", "error": "ParameterError: x", "index": 2}
    error = seam.preflight_error(cfg, cases, found)
    assert error.name == "search_space.optimiser" and "refuses 'adamx'" in str(error)


def test_the_trials_tracking_uri_is_known_before_the_config_is_checked(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tuning.trials_tracking_uri({}) == "http://mlflow.example:5000"
    assert tuning.trials_tracking_uri({"mlflow_tracking_uri": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert tuning.trials_tracking_uri({"setup_mlflow": "false"}) is None


def test_prepare_makes_the_backend_first_then_configures_it(recording, tmp_path):
    params = {"n_jobs": 2, "setup_mlflow": False, "n_trials": 4}
    cfg, backend = tuning.prepare(params, backend_name=recording)
    assert isinstance(backend, RecordingBackend) and RecordingBackend.made == [backend]
    assert (backend.n_jobs, backend.tracking_uri) == (2, None)
    assert backend.configured is cfg and cfg.n_trials == 4 and not backend.closed


def test_a_bad_configuration_closes_the_backend_and_names_the_key(recording):
    with pytest.raises(ParameterError, match="^n_trials: "):
        tuning.prepare({"n_trials": 0}, backend_name=recording)
    (backend,) = RecordingBackend.made
    assert backend.configured is None and backend.closed


def test_run_trials_checks_first_then_runs_exactly_n_trials(recording, tmp_path):
    cfg, backend = tuning.prepare({"n_trials": 3, "setup_mlflow": False}, backend_name=recording)
    handle = tuning.open_study(cfg)
    with backend:
        run = tuning.run_trials(cfg, handle, backend, tmp_path / "trials", "parent-id")
    assert backend.closed
    assert [c["varied"] for c in backend.checked] == [None, "val_split", "optimiser"]
    assert backend.checked[0]["params"]["model_dir"].startswith(str(tmp_path / "trials"))
    assert backend.trial_args == (tmp_path / "trials", "parent-id", handle.hptuning_tag)
    assert [t.state for t in handle.study.trials] == [TrialState.COMPLETE] * 3
    assert sorted(run.ran) == [0, 1, 2] and Path(tmp_path / "trials").is_dir()
    assert not (tmp_path / "trials" / "trial-check").exists()  # no trial ran there


def test_a_refused_check_stops_before_any_trial(tmp_path):
    cfg = config(setup_mlflow=False)
    handle = tuning.open_study(cfg)
    backend = RecordingBackend(
        1,
        None,
        refuse={
            "varied": "val_split",
            "name": "val_split",
            "error": "ParameterError: val_split: too big",
        },
    )
    with pytest.raises(ParameterError) as info:
        tuning.run_trials(cfg, handle, backend, tmp_path / "trials", None)
    assert info.value.name == "search_space.val_split" and "refuses 0.35" in str(info.value)
    assert handle.study.trials == []
    backend.checked = None
    run = tuning.run_trials(cfg, handle, backend, tmp_path / "trials", None, check=False)
    assert backend.checked is None and len(run.ran) == cfg.n_trials  # check=False: not asked


def test_the_runners_check_takes_a_pruner_with_the_study_in_memory(tmp_path):
    """storage null with a pruner: the study's journal is made when the study opens, after
    this check; the check neither fails on it nor makes it."""
    params = {
        "pruner": "median",
        "objectives": ["val_loss"],
        "directions": ["minimize"],
        "storage": None,
        "trials_dir": str(tmp_path / "trials"),
    }
    config = seam.check_tune_params(params)
    assert config.pruner == {"name": "median"} and config.trial_storage is None
    assert not (tmp_path / "study").exists()
    with pytest.raises(ParameterError, match="^search_space.optimiser: the train notebook"):
        seam.check_tune_params(
            {**params, "search_space": {"optimiser": {"type": "categorical", "choices": ["x"]}}}
        )
