"""The one table that maps stage names to notebooks, and the checks of a stage's parameters
that the runner makes before it starts a kernel."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib import paths
from lib.params import parameter_defaults, unknown_name


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str  # relative to notebooks/, or absolute
    description: str
    # Whether the notebook logs to an MLflow run, so that the runner's hook needs MLflow's
    # store modules after it (imported while the notebook runs).
    tracked: bool = True
    # "module:function" that checks its parameters without data or TensorFlow: given all the
    # notebook's parameters, ParameterError names the first bad one. Imported when used, so
    # that a command imports only its own stage's checks.
    check: str | None = None

    @property
    def path(self) -> Path:
        return paths.notebooks_dir() / self.notebook  # an absolute notebook path wins

    def defaults(self) -> dict[str, Any]:
        """The notebook's parameters and their defaults, read without a kernel."""
        return parameter_defaults(self.path)

    def check_names(self, names: Any, defaults: Mapping[str, Any] | None = None) -> None:
        """ParameterError for the first of ``names`` that the notebook has no parameter for,
        with the closest names it has: ``train: unknown parameter 'optimizer'; did you mean
        'optimiser'?``."""
        known = self.defaults() if defaults is None else defaults
        for name in names:
            if name not in known:
                raise unknown_name(self.name, name, known)

    def check_values(self, params: Mapping[str, Any]) -> None:
        """Run :attr:`check` on all the notebook's parameters ``params``."""
        if self.check is not None:
            module, _, function = self.check.partition(":")
            getattr(importlib.import_module(module), function)(params)

    def check_parameters(self, given: Mapping[str, Any]) -> None:
        """Refuse, before any kernel starts, a name the notebook does not have, or a value
        that :attr:`check` refuses (with the notebook's defaults for the rest)."""
        defaults = self.defaults()
        self.check_names(given, defaults)
        self.check_values({**defaults, **given})


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "prep",
            "prep.ipynb",
            "raw review folders -> one processed data set",
            tracked=False,
            check="lib.prep_checks:check_prep_params",
        ),
        Stage(
            "train",
            "train.ipynb",
            "train, evaluate and export a Keras model, tracked in MLflow",
            check="lib.train_checks:check_train_values",
        ),
        Stage(
            "tune",
            "tune.ipynb",
            "an Optuna study whose trials are executed train notebooks",
            check="lib.tuning.trials:check_tune_params",
        ),
    )
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known stages: {', '.join(STAGES)}") from None
