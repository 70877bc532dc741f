"""What a tune knows of the train notebook, read without a kernel: its parameters and
their defaults, the numbers it glues (what may be an objective), and which of its
parameters a tune may fix or search (:data:`RESERVED` ones it sets itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.core import paths
from lib.core.errors import ParameterError
from lib.core.params import did_you_mean, parameter_defaults
from lib.tuning.space import SearchParam

# Train parameters that the tune notebook sets for every trial itself.
RESERVED = {
    "model_dir": "each trial exports its model into its own run folder",
    "mlflow_parent_run_id": "each trial is a child of the study's parent run",
    "mlflow_run_name": "trials are named trial-<number>",
    "hptuning_tag": "set it with the tune notebook's hptuning_tag parameter",
    "tuning_trial": "the tune tells each trial its study and pruner (pruner, prune_on)",
    "register_model": "the tune registers the best trial's model once the study is done "
    "(the tune's register_model, registered_model_name and select)",
}
# MLflow settings may be fixed (train_params) but not searched.
_NOT_SEARCHABLE_PREFIXES = ("mlflow_", "setup_mlflow")


def train_notebook_parameters(path: str | Path | None = None) -> dict[str, Any]:
    """The train notebook's parameters and their default values (from its parameters cell,
    read without a kernel: :func:`lib.core.params.parameter_defaults`)."""
    return parameter_defaults(Path(path) if path else paths.notebook_path("train"))


def _for_every_metric(metric: str | Sequence[str], prefixes: Sequence[str]) -> set[str]:
    """``<prefix>{loss,accuracy,<metric>}`` names that every one of the metrics has."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    names = [{f"{p}{k}" for p in prefixes for k in ("loss", "accuracy", m)} for m in metrics]
    return set.intersection(*names) if names else set()


def numeric_scraps(metric: str | Sequence[str]) -> set[str]:
    """The numbers the train notebook glues for ``metric`` (all of the metrics, when the
    metric itself is searched): ``{val,test}_{loss,accuracy,<metric>}`` and train_seconds."""
    return _for_every_metric(metric, ("val_", "test_")) | {"train_seconds"}


def epoch_metrics(metric: str | Sequence[str]) -> set[str]:
    """The metrics of the train notebook's Keras history, each epoch (those of all the
    metrics, when the metric itself is searched): ``{,val_}{loss,accuracy,<metric>}``."""
    return _for_every_metric(metric, ("", "val_"))


def check_names(
    space: Mapping[str, SearchParam], fixed: Mapping[str, Any], defaults: Mapping[str, Any]
) -> None:
    """Fixed and searched names must be train parameters that a tune may set, once each."""
    known = [n for n in defaults if n not in RESERVED]
    for name in fixed:
        if name in RESERVED:
            raise ParameterError(f"train_params.{name}", f"cannot be set: {RESERVED[name]}")
        if name not in defaults:
            raise ParameterError(
                f"train_params.{name}",
                f"not a parameter of the train notebook; {did_you_mean(name, known)}",
            )
    for name in space:
        top, _, sub = name.partition(".")
        key = f"search_space.{name}"
        if top in RESERVED:
            raise ParameterError(key, f"cannot be searched: {RESERVED[top]}")
        if top.startswith(_NOT_SEARCHABLE_PREFIXES):
            raise ParameterError(key, "MLflow settings cannot be searched (fix them instead)")
        if top not in defaults:
            raise ParameterError(
                key, f"not a parameter of the train notebook; {did_you_mean(top, known)}"
            )
        if sub and not isinstance(fixed.get(top, defaults[top]), Mapping):
            raise ParameterError(
                key, f"{top} is not a mapping parameter, so {name!r} cannot set a key in it"
            )
        if sub and top in space:
            raise ParameterError(key, f"{top} is searched as a whole too")
        if name in fixed:
            raise ParameterError(
                key, f"{name} is also fixed in train_params; search it or fix it, not both"
            )
        if sub and isinstance(fixed.get(top), Mapping) and sub in fixed[top]:
            raise ParameterError(
                key, f"{name} is also fixed in train_params.{top}; search it or fix it, not both"
            )


def searched_metrics(space: Mapping[str, SearchParam], metric: Any) -> list[str]:
    """The train notebook's ``metric`` in every trial: its choices if it is searched."""
    return [str(m) for m in (space["metric"].choices if "metric" in space else [metric])]


def check_objectives_glued(
    objectives: Sequence[str], space: Mapping[str, SearchParam], metric: Any
) -> None:
    metrics = searched_metrics(space, metric)
    glued = numeric_scraps(metrics)
    for i, objective in enumerate(objectives):
        if objective not in glued:
            raise ParameterError(
                f"objectives[{i}]",
                f"the train notebook does not glue {objective!r} (metric {metrics[0]!r}"
                f"{' and others' if len(metrics) > 1 else ''}); it glues "
                + ", ".join(sorted(glued)),
            )
