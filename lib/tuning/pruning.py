"""Pruning from inside the train notebooks: the tune's ``pruner`` and ``prune_on``, and the
trial kernel's side of a pruned trial.

Each trial is a train notebook in its own kernel, out of the process that holds the study;
both reach the study through its storage. The tune passes the trial its study, storage,
number, pruner and ``prune_on`` (the train notebook's ``tuning_trial`` parameter, see
:func:`lib.tuning.trial_params`); the notebook's training reports ``prune_on`` after every
epoch through :func:`reporter` and stops when the pruner says so; :func:`stop_if_pruned`
then ends the notebook with one readable line (:data:`PRUNED_ERROR`), having glued
:data:`PRUNED_SCRAP`, from which the tune tells the trial PRUNED.

Importing this module imports no Optuna, Keras or MLflow (the runner imports it in every
stage, and the data-prep image has none of them): they are imported when used, and
``TrialPruned`` (a subclass of ``optuna.exceptions.TrialPruned``) is made on first access.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lib.core.errors import ParameterError
from lib.core.params import as_mapping
from lib.tracking.runs import server_errors
from lib.tuning.attrs import PRUNED_ERROR, PRUNED_SCRAP
from lib.tuning.storage import open_storage, optuna_object, trial_by_number

if TYPE_CHECKING:
    import optuna

NO_PRUNER = "none"
_LABELS = {
    "median": "median pruner",
    "percentile": "percentile pruner",
    "successive_halving": "successive halving pruner",
    "hyperband": "Hyperband pruner",
}


# -- configuration -----------------------------------------------------------------------


def _pruner_classes() -> dict[str, type]:
    import optuna.pruners as p

    return {
        "median": p.MedianPruner,
        "percentile": p.PercentilePruner,
        "successive_halving": p.SuccessiveHalvingPruner,
        "hyperband": p.HyperbandPruner,
    }


def _names() -> str:
    return ", ".join([*_LABELS, NO_PRUNER])


def parse_pruner(value: Any) -> dict[str, Any] | None:
    """The ``pruner`` setting as ``{name: ..., <its Optuna arguments>}``, or None for no
    pruning (None, "none", ``{name: none}``); a bare name is allowed. Checked by
    :func:`make_pruner`."""
    if isinstance(value, str) and value.strip().lower() in ("", NO_PRUNER, "null"):
        return None
    bare = isinstance(value, str) and not value.lstrip().startswith("{")  # a name alone
    spec = {"name": value.strip()} if bare else as_mapping("pruner", value)
    if not spec:
        return None
    if "name" not in spec:
        raise ParameterError("pruner.name", f"missing, e.g. {{name: median}}; known: {_names()}")
    name = str(spec["name"]).strip().lower()
    if name == NO_PRUNER:
        return None
    return {**spec, "name": name}


def make_pruner(spec: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """An Optuna pruner from ``{name: median, n_startup_trials: 3, ...}``; other keys are its
    arguments. ParameterError names ``pruner.<key>``, as :func:`make_sampler` does."""
    return optuna_object("pruner", _pruner_classes(), spec, _names())


def metric_direction(name: str) -> str:
    """How an epoch metric improves: losses are minimised, the others maximised."""
    return "minimize" if name.endswith("loss") else "maximize"


def check_pruning(
    spec: Mapping[str, Any] | None,
    prune_on: Any,
    directions: Sequence[str],
    epoch_metrics: set[str],
) -> str:
    """``prune_on`` checked against the study (``spec`` None: anything goes, nothing is
    reported). A pruner needs a single objective, and ``prune_on`` must be an epoch metric
    of the train notebook (``epoch_metrics``) that improves the way the objective does."""
    prune_on = str(prune_on or "").strip()
    if spec is None:
        return prune_on
    make_pruner(spec)
    if len(directions) > 1:
        raise ParameterError(
            "pruner",
            f"the {_LABELS[spec['name']]} needs a single objective, but the study has "
            f"{len(directions)} (directions {list(directions)}): Optuna's Trial.report raises "
            "for multi-objective studies; tune one objective (e.g. objectives: [val_loss], "
            "directions: [minimize]) or set pruner: null",
        )
    if prune_on not in epoch_metrics:
        raise ParameterError(
            "prune_on",
            f"{prune_on!r} is not an epoch metric of the train notebook; it has "
            + ", ".join(sorted(epoch_metrics)),
        )
    if metric_direction(prune_on) != directions[0]:
        raise ParameterError(
            "prune_on",
            f"{prune_on} is {metric_direction(prune_on)}d but the study's objective is "
            f"{directions[0]}d: prune on a metric that improves the same way (e.g. "
            f"{'val_loss' if directions[0] == 'minimize' else 'val_accuracy'})",
        )
    return prune_on


# -- the trial kernel's side -------------------------------------------------------------


def open_trial(tuning_trial: Mapping[str, Any]) -> optuna.Trial:
    """The running trial that ``tuning_trial`` names, in its study (loaded through its
    storage, with its pruner), to report to."""
    import optuna

    study = optuna.load_study(
        study_name=tuning_trial["study_name"],
        storage=open_storage(tuning_trial["storage"], heartbeat_interval=None),
        sampler=optuna.samplers.RandomSampler(),  # nothing is sampled here
        pruner=make_pruner(tuning_trial["pruner"]),
    )
    return trial_by_number(study, int(tuning_trial["trial_number"]))


def reporter(tuning_trial: Mapping[str, Any] | None) -> Any:
    """The Keras callback that reports ``prune_on`` to the trial after every epoch and
    stops the training when the pruner says so; None outside a tune with a pruner."""
    if not tuning_trial:
        return None
    return _reporter_class()(tuning_trial)


@functools.cache
def _reporter_class() -> type:
    import keras

    class PruningReporter(keras.callbacks.Callback):
        """Reports ``prune_on`` after each epoch (``trial.report(value, epoch)``, epochs
        0-based as Keras counts them) and asks the pruner."""

        def __init__(self, tuning_trial: Mapping[str, Any]) -> None:
            super().__init__()
            self.spec = dict(tuning_trial)
            self.prune_on = str(tuning_trial["prune_on"])
            self.trial = open_trial(tuning_trial)
            self.pruned_at: int | None = None  # 1-based epoch of the last report, if pruned
            self.value: float | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = logs or {}
            if self.prune_on not in logs:
                raise ParameterError(
                    "prune_on",
                    f"{self.prune_on!r} is not among this training's epoch metrics "
                    f"({', '.join(sorted(logs))}); set prune_on to one of them",
                )
            self.value = float(logs[self.prune_on])
            self.trial.report(self.value, epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch + 1
                self.model.stop_training = True

        def message(self) -> str:
            """One line: which trial was pruned, when and why."""
            label = _LABELS.get(self.spec["pruner"]["name"], "pruner")
            return (
                f"trial {self.spec['trial_number']} pruned at epoch {self.pruned_at}: "
                f"{self.prune_on} {self.value:.4g} worse than the {label}'s threshold; "
                "evaluation and export skipped"
            )

    return PruningReporter


@functools.cache
def _trial_pruned_class() -> type:
    import optuna

    class TrialPruned(optuna.exceptions.TrialPruned):
        """The trial was pruned: its notebook stops here, with one readable line."""

        def _render_traceback_(self) -> list[str]:
            # IPython shows this instead of a traceback: the notebook ends with one line.
            return [str(self)]

    return TrialPruned


def __getattr__(name: str) -> Any:
    if name == PRUNED_ERROR:  # TrialPruned, made on first use (it imports Optuna)
        return _trial_pruned_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stop_if_pruned(trial_reporter: Any, run: Any = None) -> None:
    """If the pruner stopped the training: glue :data:`PRUNED_SCRAP`, tag the MLflow
    ``run`` (the active one, if tracking) with it and end it KILLED, then raise
    ``TrialPruned`` with one line saying why, so the cells after it do not run."""
    if trial_reporter is None or trial_reporter.pruned_at is None:
        return
    import scrapbook as sb

    sb.glue(PRUNED_SCRAP, trial_reporter.pruned_at)
    if run is not None:
        import mlflow

        with server_errors("ending the pruned run"):
            mlflow.set_tag(PRUNED_SCRAP, str(trial_reporter.pruned_at))
            mlflow.end_run(status="KILLED")
    raise _trial_pruned_class()(trial_reporter.message())
