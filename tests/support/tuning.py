"""Tests of lib.tuning, one module per module of the package, and their shared helpers:
a configuration from parameters alone, and a quick, deterministic trial function."""

from lib import tuning
from lib.tuning import TrialOutcome


def config(**params) -> tuning.TuneConfig:
    """``load_config`` of ``params`` over conf/hptuning.yml."""
    return tuning.load_config(params)


def fake_trial(number: int, sampled: dict) -> TrialOutcome:
    """Objectives from the sampled values: quick and deterministic."""
    split = sampled["val_split"]
    return TrialOutcome(scraps={"val_loss": split, "val_accuracy": 1 - split, "x": number})


def storage_url(tmp_path, kind: str | None) -> str | None:
    """A storage of ``kind`` under ``tmp_path``: None (memory), sqlite or journal."""
    return {
        None: None,
        "sqlite": f"sqlite:///{tmp_path / 'optuna.db'}",
        "journal": str(tmp_path / "journal.log"),
    }[kind]
