"""Checks of the train notebook's parameters, all made before any data is loaded.

:func:`check_train_values` needs neither data nor TensorFlow (the choices come from
:mod:`lib.model.train_spec`): the runner calls it before it starts a kernel, and the notebook
again through :func:`check_train_params`, which also checks that the data set is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.core import paths
from lib.core.errors import ParameterError
from lib.core.params import as_bool, check_choice, check_float, check_int, not_allowed
from lib.core.secrets import check_parameter_names
from lib.model import train_spec
from lib.model.train_spec import check_model_name


def check_train_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The train parameters, normalised, all but ``data_path`` (whose data set is
    :func:`check_train_params`'s to find); ParameterError names the first bad one."""
    check_parameter_names(params)
    p = dict(params)
    p["val_split"] = check_float("val_split", p["val_split"], 0, 1)
    p["bs"] = check_int("bs", p["bs"], minimum=1)
    p["epochs"] = check_int("epochs", p["epochs"], minimum=1)
    p["seed"] = check_int("seed", p["seed"], minimum=0)
    p["optimiser"] = check_choice("optimiser", p["optimiser"], train_spec.OPTIMISERS)
    if p.get("learning_rate") is not None:
        p["learning_rate"] = check_float("learning_rate", p["learning_rate"], 0, None)
    p["metric"] = check_choice("metric", p["metric"], train_spec.METRICS)
    if p.get("early_stopping_patience") is not None:
        p["early_stopping_patience"] = check_int(
            "early_stopping_patience", p["early_stopping_patience"], minimum=1
        )
    if p.get("tuning_trial") is not None:
        p["tuning_trial"] = _check_tuning_trial(p["tuning_trial"])
    p["model_name"] = check_choice("model_name", p["model_name"], train_spec.MODEL_NAMES)
    model_params = p.get("model_params") or {}
    if not isinstance(model_params, Mapping):
        raise not_allowed("model_params", model_params, "a mapping of hyperparameter names")
    try:
        p["model_params"] = train_spec.check_model_params(p["model_name"], dict(model_params))
    except ParameterError as exc:  # named where it was given
        raise ParameterError(f"model_params.{exc.name}", exc.problem) from None
    for flag in ("setup_mlflow", "mlflow_autolog", "register_model"):
        if flag in p:
            p[flag] = as_bool(flag, p[flag])
    if p.get("setup_mlflow") and not str(p.get("mlflow_exp_name") or "").strip():
        raise not_allowed("mlflow_exp_name", p.get("mlflow_exp_name"), "a non-empty name")
    if p.get("register_model"):
        _check_registering(p)
    if not str(p.get("model_dir") or "").strip():
        raise not_allowed("model_dir", p.get("model_dir"), "a folder to export the model to")
    paths.check_output_dir("model_dir", p["model_dir"])
    return p


def check_train_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The train parameters, normalised (:func:`check_train_values`), and ``data_path``
    resolved to a processed data set that is there; ParameterError names the first bad one."""
    # Here: lib.data.datasets imports numpy and pyarrow (~0.25 s, measured), which the
    # runner's checks of the other train parameters (check_train_values) do without.
    from lib.data.datasets import check_data_path

    p = check_train_values(params)
    p["data_path"] = str(check_data_path("data_path", p["data_path"]))
    # A read-only or full model folder: said before the training, not when exporting after it.
    paths.check_writable("model_dir", paths.resolve(p["model_dir"]))
    return p


def _check_registering(p: dict[str, Any]) -> None:
    """register_model needs the MLflow run whose model it registers, and a model name."""
    if not p.get("setup_mlflow"):
        raise not_allowed(
            "register_model",
            True,
            "registering needs MLflow tracking: set setup_mlflow True, or register_model False",
        )
    p["registered_model_name"] = check_model_name(p.get("registered_model_name"))


_TUNING_TRIAL_KEYS = ("study_name", "storage", "trial_number", "pruner", "prune_on")


def _check_tuning_trial(value: Any) -> dict[str, Any]:
    """The tune's description of this trial (set by the tune notebook, not by hand)."""
    if not isinstance(value, Mapping) or any(k not in value for k in _TUNING_TRIAL_KEYS):
        raise not_allowed(
            "tuning_trial",
            value,
            "None, or the mapping the tune notebook sets (" + ", ".join(_TUNING_TRIAL_KEYS) + ")",
        )
    return dict(value)


# Where and how the run itself is recorded (its store, artifact location, name, parent and
# tags): settings of the run, shown as its attributes, not parameters of the training.
RUN_SETTINGS = frozenset(
    {
        "mlflow_tracking_uri",
        "mlflow_artifact_location",
        "mlflow_run_name",
        "mlflow_parent_run_id",
        "mlflow_tags",
        "hptuning_tag",
        "tuning_trial",  # the study the trial reports to: a setting of this run, not training's
    }
)


def logged_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters an MLflow run of the train notebook logs: all but RUN_SETTINGS, and
    each of the model's hyperparameters as ``model.<name>``."""
    logged = {name: value for name, value in params.items() if name not in RUN_SETTINGS}
    logged.update({f"model.{k}": v for k, v in (params.get("model_params") or {}).items()})
    return logged
