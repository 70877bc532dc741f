"""runner.pipeline.plan: each stage's parameters checked before any stage runs (a parameter
the notebook lacks, a value the stage refuses), the processed data set passed on to train and
tune, and the tracking store from the environment as an input.
"""

from __future__ import annotations

import pytest

from lib.core.errors import ParameterError
from runner.pipeline.plan import plan


def test_a_parameter_the_notebook_lacks_is_refused_and_data_is_passed_on():
    with pytest.raises(ParameterError, match=r"^train: unknown parameter 'epoch'; did you mean "):
        plan(["train"], {"train": {"epoch": 3}})
    prep, train, tune = plan(
        ["prep", "train", "tune"], {"prep": {"processed_dir": "x/p"}, "tune": {"n_trials": 1}}
    )
    assert train.overrides["data_path"] == "x/p" and train.parameters["epochs"] == 5
    assert tune.overrides["train_params"] == {"data_path": "x/p"}


@pytest.mark.parametrize(
    "given, message",
    [
        ({"train": {"epochs": "abc"}}, "train.epochs: 'abc' is not allowed: an integer"),
        ({"train": {"model_dir": "notebooks"}}, "train.model_dir: notebooks is the project's"),
        ({"prep": {"processed_dir": "notebooks/p"}}, "prep.processed_dir: notebooks/p is inside"),
        ({"tune": {"n_trials": 0}}, "tune.n_trials: 0 is not allowed"),
    ],
)
def test_a_value_a_stage_refuses_is_refused_before_any_stage_runs(given, message):
    with pytest.raises(ParameterError) as info:
        plan(["prep", "train", "tune"], given)
    assert str(info.value).startswith(message)


def test_the_tracking_store_from_the_environment_is_an_input(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert plan(["train"], {})[0].parameters["mlflow_tracking_uri"] is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://me:secret@mlflow.example:5005")
    (train,) = plan(["train"], {})
    assert (
        train.parameters["mlflow_tracking_uri"] == "$MLFLOW_TRACKING_URI=http://mlflow.example:5005"
    )
    assert "mlflow_tracking_uri" not in train.overrides  # the notebook still reads it itself
