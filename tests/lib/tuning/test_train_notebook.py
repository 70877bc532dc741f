"""lib.tuning.train_notebook: what the tune knows of the train notebook, and the checks of
the fixed and searched train parameters against it."""

from pathlib import Path

import nbformat
import numpy as np
import pytest

from lib import tuning
from lib.core.errors import ParameterError
from lib.model import evaluation
from tests.support.tuning import config

ROOT = Path(__file__).resolve().parents[3]


def test_the_train_notebooks_parameters_and_defaults_are_read_without_a_kernel():
    defaults = tuning.train_notebook_parameters()
    assert defaults["bs"] == 256 and defaults["optimiser"] == "adam"
    assert defaults["model_params"] == {} and defaults["mlflow_parent_run_id"] is None
    assert set(tuning.RESERVED) <= set(defaults)


@pytest.mark.parametrize("metric", ["accuracy", "auc", "precision", "recall"])
def test_numeric_scraps_match_what_the_train_notebook_glues(metric):
    """The notebook glues every value of evaluation.split_metrics, and train_seconds."""
    cells = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4).cells
    source = "\n".join(c.source for c in cells)
    assert "evaluation.split_metrics(" in source and '{"val": ' in source and '"test": ' in source
    assert "for name, value in results.items():\n    sb.glue(name, value)" in source
    assert 'sb.glue("train_seconds", ' in source
    labels, probabilities = np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.4, 0.1])
    glued = evaluation.split_metrics(
        {"val": (labels, probabilities), "test": (labels, probabilities)}, metric
    )
    assert tuning.numeric_scraps(metric) == set(glued) | {"train_seconds"}


def test_with_the_metric_searched_only_what_every_metric_glues_can_be_an_objective():
    assert tuning.numeric_scraps(["auc", "recall"]) == {
        "val_loss",
        "val_accuracy",
        "test_loss",
        "test_accuracy",
        "train_seconds",
    }


@pytest.mark.parametrize(
    "params, key, words",
    [
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
            {
                "search_space": {
                    "model_params": {"type": "categorical", "choices": ["a"]},
                    "model_params.ngram_max": {"type": "int", "low": 1, "high": 2},
                }
            },
            "search_space.model_params.ngram_max",
            "searched as a whole too",
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
        (
            {"train_params": {"epoch": 1}},
            "train_params.epoch",
            "not a parameter of the train notebook; did you mean 'epochs'?",
        ),
        ({"train_params": {"model_dir": "x"}}, "train_params.model_dir", "cannot be set"),
        (
            {"train_params": {"optimiser": "adam"}},
            "search_space.optimiser",
            "also fixed in train_params",
        ),
        (
            {
                "search_space": {"model_params.ngram_max": {"type": "int", "low": 1, "high": 2}},
                "train_params": {"model_params": {"ngram_max": 2}},
            },
            "search_space.model_params.ngram_max",
            "also fixed in train_params.model_params",
        ),
        ({"objectives": ["val_loss", "val_f1"]}, "objectives[1]", "does not glue 'val_f1'"),
        ({"objectives": ["val_loss", "val_auc"]}, "objectives[1]", "does not glue 'val_auc'"),
    ],
)
def test_names_the_train_notebook_does_not_take_are_refused_by_key(params, key, words):
    with pytest.raises(ParameterError) as info:
        config(**params)
    assert info.value.name == key, str(info.value)
    assert words in str(info.value)


def test_objectives_follow_the_metric_and_the_reference_test_objectives_are_allowed():
    cfg = config(objectives=["test_loss", "test_accuracy"])
    assert cfg.objectives == ["test_loss", "test_accuracy"]
    cfg = config(objectives=["val_loss", "val_auc"], train_params={"metric": "auc"})
    assert cfg.objectives == ["val_loss", "val_auc"]
    cfg = config(directions=["minimize"], objectives=["train_seconds"])
    assert cfg.objectives == ["train_seconds"]
    with pytest.raises(ParameterError, match=r"^objectives\[1\]: .*does not glue 'val_auc'"):
        config(
            objectives=["val_loss", "val_auc"],
            search_space={"metric": {"type": "categorical", "choices": ["auc", "recall"]}},
        )


def test_the_tuning_trial_is_the_tunes_to_set_and_the_epoch_metrics_follow_the_metric():
    with pytest.raises(ParameterError, match="^train_params.tuning_trial: cannot be set"):
        config(train_params={"tuning_trial": {"study_name": "x"}})
    # What lib.model.training.train's history holds per epoch (tests/lib/model/test_training.py
    # checks it).
    assert tuning.train_notebook.epoch_metrics("auc") == {
        "loss",
        "accuracy",
        "auc",
        "val_loss",
        "val_accuracy",
        "val_auc",
    }
    assert tuning.train_notebook.epoch_metrics(["auc", "accuracy"]) == {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
    }
