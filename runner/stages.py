"""The one table that maps stage names to notebooks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lib import paths


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str  # relative to notebooks/, or absolute
    description: str
    # Whether the notebook logs to an MLflow run, so that the runner's hook needs MLflow's
    # store modules after it (imported while the notebook runs).
    tracked: bool = True

    @property
    def path(self) -> Path:
        return paths.notebooks_dir() / self.notebook  # an absolute notebook path wins


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("prep", "prep.ipynb", "raw review folders -> one processed data set", tracked=False),
        Stage(
            "train", "train.ipynb", "train, evaluate and export a Keras model, tracked in MLflow"
        ),
        Stage("tune", "tune.ipynb", "an Optuna study whose trials are executed train notebooks"),
    )
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known stages: {', '.join(STAGES)}") from None
