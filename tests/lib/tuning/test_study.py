"""lib.tuning.study: creating a study, and resuming or joining one that its storage holds."""

import pytest
from optuna.trial import TrialState

from lib import tuning
from lib.core.errors import ParameterError
from tests.support.tuning import config


def test_a_new_study_records_its_objectives_tag_and_enqueued_trials(tmp_path):
    cfg = config(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        hptuning_tag="tag-1",
        enqueue_trials=[{"val_split": 0.35, "optimiser": "rmsprop"}],
    )
    handle = tuning.open_study(cfg)
    assert handle.created and handle.hptuning_tag == "tag-1"
    study = handle.study
    assert study.user_attrs["objectives"] == ["val_loss", "val_accuracy"]
    assert study.user_attrs["hptuning_tag"] == "tag-1"
    (waiting,) = study.trials
    assert waiting.state == TrialState.WAITING and waiting.user_attrs["enqueued"] is True
    assert waiting.system_attrs["fixed_params"] == {"val_split": 0.35, "optimiser": "rmsprop"}


def test_a_resumed_study_keeps_its_tag_and_its_enqueued_trials_are_not_added_again(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_HPTUNING_TAG", raising=False)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    enqueue = [{"val_split": 0.35, "optimiser": "rmsprop"}]
    first = tuning.open_study(config(storage=storage, enqueue_trials=enqueue))
    again = tuning.open_study(config(storage=storage, enqueue_trials=enqueue))
    assert not again.created and again.hptuning_tag == first.hptuning_tag
    assert len(again.study.trials) == 1
    monkeypatch.setenv("MLFLOW_HPTUNING_TAG", "from-env")
    assert tuning.open_study(config(storage=storage)).hptuning_tag == "from-env"
    assert tuning.open_study(config(storage=storage, hptuning_tag="p")).hptuning_tag == "p"


def test_a_resumed_study_must_keep_its_directions_and_objectives(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tuning.open_study(config(storage=storage))
    with pytest.raises(ParameterError, match="^directions: .*differ"):
        tuning.open_study(config(storage=storage, directions=["maximize", "maximize"]))
    with pytest.raises(ParameterError, match="^objectives: .*differ"):
        tuning.open_study(config(storage=storage, objectives=["test_loss", "test_accuracy"]))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_resumed_study_refuses_a_search_space_its_trials_cannot_share(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = config(storage=storage)
    handle = tuning.open_study(cfg)
    trial = handle.study.ask()
    tuning.sample(trial, cfg.search_space)
    changed = {"optimiser": {"type": "float", "low": 0.1, "high": 0.2}}
    with pytest.raises(ParameterError) as info:
        tuning.open_study(
            config(
                storage=storage,
                search_space={
                    **changed,
                    "val_split": {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025},
                },
            )
        )
    assert info.value.name == "search_space.optimiser" and "trial 0" in str(info.value)


def test_the_trials_go_into_the_runners_run_folder_or_a_new_one(tmp_path, monkeypatch):
    from lib.core import paths
    from lib.tuning.study import default_trials_dir

    monkeypatch.setenv(paths.RUN_DIR_ENV, str(tmp_path / "run"))
    assert default_trials_dir() == tmp_path / "run" / "trials"
    monkeypatch.delenv(paths.RUN_DIR_ENV)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    made = default_trials_dir()
    assert made.name == "trials" and made.parent.parent == tmp_path / "runs"
    assert made.parent.name.endswith("-tune") and made.parent.is_dir()
