"""lib.tuning.config: the tune notebook's parameters over conf/hptuning.yml, merged and
checked before anything runs."""

from pathlib import Path

import pytest
import yaml

from lib import tuning
from lib.core.errors import ParameterError
from tests.support.tuning import config

ROOT = Path(__file__).resolve().parents[3]
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


def test_conf_hptuning_is_the_reference_setup():
    assert yaml.safe_load((ROOT / "conf" / "hptuning.yml").read_text()) == REFERENCE


def test_conf_hptuning_pruning_is_a_single_objective_study_that_prunes():
    cfg = tuning.load_config({}, "conf/hptuning-pruning.yml")
    assert (cfg.objectives, cfg.directions) == (["val_loss"], ["minimize"])
    assert cfg.pruner == {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1}
    assert cfg.prune_on == "val_loss" and cfg.n_trials == 12
    assert cfg.train_params == {"epochs": 8}
    lr = cfg.search_space["learning_rate"]
    assert (lr.low, lr.high, lr.log) == (1e-3, 1.0, True)


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
    assert optimiser.choices == ("adam", "rmsprop")


def test_parameters_override_the_file_and_another_file_can_be_named(tmp_path):
    other = tmp_path / "mine.yml"
    other.write_text("n_trials: 9\nstudy_name: mine\n")
    cfg = tuning.load_config({"n_jobs": 2}, config_file=other)
    assert (cfg.n_trials, cfg.n_jobs, cfg.study_name) == (9, 2, "mine")
    assert cfg.sampler == {"name": "tpe", "seed": 123}  # DEFAULTS fill what the file lacks
    cfg = tuning.load_config({"study_name": "x", "storage": "memory"}, config_file=other)
    assert (cfg.study_name, cfg.storage) == ("x", None)


def test_train_params_merge_key_by_key_over_the_file(tmp_path):
    other = tmp_path / "mine.yml"
    other.write_text("train_params: {epochs: 2, bs: 64}\n")
    cfg = tuning.load_config({"train_params": {"bs": 32}}, config_file=other)
    assert cfg.train_params == {"epochs": 2, "bs": 32}


def test_parameters_given_as_strings_as_polyaxon_passes_them():
    cfg = config(
        search_space='{"bs": {"type": "int", "low": 16, "high": 64, "step": 16}}',
        directions="[maximize]",
        objectives='["val_accuracy"]',
        train_params="{epochs: 2}",
        n_trials="4",
        trial_html="true",
        kernel_max_rss_mib="1500",
    )
    assert cfg.search_space["bs"].grid() == [16, 32, 48, 64]
    assert (cfg.directions, cfg.objectives, cfg.n_trials) == (["maximize"], ["val_accuracy"], 4)
    assert cfg.train_params == {"epochs": 2}
    assert cfg.trial_html is True and cfg.kernel_max_rss_mib == 1500.0


@pytest.mark.parametrize(
    "params, key, words",
    [
        ({"directions": ["minimize"]}, "objectives", "1 directions"),
        ({"objectives": ["val_loss"]}, "objectives", "give one direction per objective"),
        ({"directions": ["minimise", "maximize"]}, "directions[0]", "not one of"),
        ({"directions": []}, "directions", "must not be empty"),
        ({"objectives": ["val_loss", "val_loss"]}, "objectives", "twice"),
        ({"search_space": {}}, "search_space", "not a non-empty mapping"),
        ({"search_space": "{bad: [yaml"}, "search_space", "does not parse as YAML/JSON"),
        ({"train_params": "[1, 2]"}, "train_params", "not a mapping"),
        ({"train_params": {"api_key": "x"}}, "train_params", "looks like a secret"),
        ({"n_trials": 0}, "n_trials", "integer >= 1"),
        ({"n_jobs": "two"}, "n_jobs", "an integer"),
        ({"max_failures": 0}, "max_failures", "integer >= 1"),
        ({"cell_timeout": 0}, "cell_timeout", "integer >= 1"),
        ({"kernel_max_trials": "x"}, "kernel_max_trials", "an integer"),
        ({"kernel_max_rss_mib": -5}, "kernel_max_rss_mib", "a number in (0, inf)"),
        ({"trial_html": "maybe"}, "trial_html", "true or false"),
        ({"setup_mlflow": "maybe"}, "setup_mlflow", "true or false"),
        ({"grace_period": 10, "heartbeat_interval": 10}, "grace_period", "must exceed"),
        ({"sampler": {"seed": 1}}, "sampler.name", "missing"),
        ({"study_name": " "}, "study_name", "must not be empty"),
        ({"storage": 5}, "storage", "not a URL"),
        ({"enqueue_trials": [{"bs": 3}]}, "enqueue_trials[0].bs", "not a name"),
        ({"enqueue_trials": [{"val_split": 0.9}]}, "enqueue_trials[0].val_split", "outside"),
        ({"enqueue_trials": ["adam"]}, "enqueue_trials[0]", "not a mapping"),
        ({"trial_timeout_s": 0}, "trial_timeout_s", "integer >= 1"),
        ({"trial_timeout_s": "soon"}, "trial_timeout_s", "an integer"),
        ({"trials_dir": "notebooks/trials"}, "trials_dir", "inside the project's notebooks"),
    ],
)
def test_bad_configuration_names_the_key(params, key, words):
    with pytest.raises(ParameterError) as info:
        config(**params)
    assert info.value.name == key, str(info.value)
    assert words in str(info.value) and str(info.value).startswith(f"{key}: ")


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("n_trials: [1, 2", "config_file", "does not parse"),
        ("- a list\n", "config_file", "does not hold a mapping"),
        ("n_trails: 3\n", "n_trails", "unknown key in"),
        ("n_trails: 3\n", "n_trails", "; did you mean 'n_trials'?"),
    ],
)
def test_a_bad_config_file_names_the_file_or_its_key(tmp_path, text, key, words):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ParameterError) as info:
        tuning.load_config({}, config_file=path)
    assert info.value.name == key and words in str(info.value)
    with pytest.raises(ParameterError, match="^config_file: .* does not exist"):
        tuning.read_config_file(tmp_path / "missing.yml")


def test_the_config_files_hptuning_tag_is_used_unless_the_parameter_sets_one(tmp_path):
    other = tmp_path / "tagged.yml"
    other.write_text("hptuning_tag: from-file\n")
    assert tuning.load_config({}, config_file=other).hptuning_tag == "from-file"
    assert tuning.load_config({"hptuning_tag": 7}, config_file=other).hptuning_tag == "7"
    assert tuning.load_config({}).hptuning_tag is None


def test_mlflow_settings_in_train_params_win_over_the_tune_parameters():
    cfg = tuning.load_config(
        {"mlflow_exp_name": "a", "train_params": {"mlflow_exp_name": "b", "setup_mlflow": False}}
    )
    assert (cfg.mlflow_exp_name, cfg.setup_mlflow) == ("b", False)


def test_a_password_in_the_storage_url_is_refused_and_a_placeholder_is_kept(monkeypatch):
    with pytest.raises(ParameterError) as info:
        config(storage="postgresql://optuna:secret-pw@db.example:5432/optuna")
    assert info.value.name == "storage" and "secret-pw" not in str(info.value)
    assert "PGPASSWORD" in str(info.value) and "${VAR}" in str(info.value)
    monkeypatch.setenv("OPTUNA_DB_PW", "secret-pw")
    cfg = config(storage="postgresql://optuna:${OPTUNA_DB_PW}@db.example:5432/optuna")
    assert cfg.storage == "postgresql://optuna:${OPTUNA_DB_PW}@db.example:5432/optuna"
    summary = cfg.summary()  # shown as given, never expanded
    assert "secret-pw" not in str(summary) and "db.example" in summary["storage"]
    assert summary["search_space"]["optimiser"] == "categorical ['adam', 'rmsprop']"


def test_requested_n_jobs_reads_the_parameter_then_the_file_and_falls_back_to_one(tmp_path):
    other = tmp_path / "two.yml"
    other.write_text("n_jobs: 2\n")
    assert tuning.requested_n_jobs({"n_jobs": 3}, other) == 3
    assert tuning.requested_n_jobs({}, other) == 2
    assert tuning.requested_n_jobs({}, None) == 1
    # Bad values are load_config's to report; the kernels start with one meanwhile.
    assert tuning.requested_n_jobs({"n_jobs": "two"}, other) == 1
    assert tuning.requested_n_jobs({}, tmp_path / "missing.yml") == 1


def test_the_default_kernel_memory_limit_shares_the_memory_between_kernels():
    limit = tuning.memory_limit_mib()
    assert 0 < tuning.default_kernel_rss_mib(2) < tuning.default_kernel_rss_mib(1) < limit


def test_a_password_in_a_url_of_the_config_file_or_train_params_is_refused(tmp_path):
    conf = tmp_path / "tune.yml"
    conf.write_text("storage: postgresql://optuna:file-pw-1@db.example/optuna\n")
    with pytest.raises(ParameterError) as info:
        tuning.load_config({}, config_file=conf)
    assert info.value.name == f"storage (in {conf})" and "PGPASSWORD" in str(info.value)
    assert "file-pw-1" not in str(info.value)
    conf.write_text("train_params: {mlflow_tracking_uri: 'http://u:file-pw-2@127.0.0.1:5000'}\n")
    with pytest.raises(ParameterError) as info:
        tuning.load_config({}, config_file=conf)
    assert info.value.name == f"train_params.mlflow_tracking_uri (in {conf})"
    with pytest.raises(ParameterError) as info:
        tuning.load_config({"train_params": {"mlflow_tracking_uri": "http://u:pw-3@h:5000"}})
    assert info.value.name == "train_params.mlflow_tracking_uri"
    assert "MLFLOW_TRACKING_PASSWORD" in str(info.value)
