"""The study's one registered model: the best trial's, registered once the study is done,
with the alias ``challenger``.

The best trial is the complete trial with the best first objective (its direction), or
with the best ``select`` metric of the configuration (any number the trials record).

Several tune processes may share one study; exactly one of them registers, and none of
them waits for the others. The rule is decided from the study's storage, which every
process reads alike: once the study holds its ``n_trials`` finished trials, the process
that ran the trial finished last (by completion time, then number) registers; every other
process either saw the study unfinished (a trial of another process was still running:
that process registers when its trial ends) or sees that the last trial is not its own.
The registration is recorded in the study (:data:`REGISTERED_ATTR`), so a resumed study
never registers a second version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lib.core.errors import ParameterError
from lib.core.params import as_bool
from lib.tracking import registry
from lib.tuning.attrs import METRICS_ATTR, MODEL_URI_ATTR, REGISTERED_ATTR, RUN_ID_ATTR
from lib.tuning.loop import StudyRun, is_finished

if TYPE_CHECKING:
    import optuna

    from lib.tuning.config import TuneConfig
    from lib.tuning.study import StudyHandle

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")


def check_registering(
    register_model: Any, setup_mlflow: bool, name: Any
) -> tuple[bool, str | None]:
    """``(whether the tune registers, the registered model's name)``: ``register_model``
    None registers when MLflow tracking is on; True needs it."""
    wanted = None if register_model is None else as_bool("register_model", register_model)
    if wanted and not setup_mlflow:
        raise ParameterError(
            "register_model",
            "True is not allowed: registering needs MLflow tracking: set setup_mlflow True, "
            "or register_model False",
        )
    registers = setup_mlflow if wanted is None else wanted
    return registers, registry.check_model_name(name) if registers else None


def check_select(
    value: Any, objectives: Sequence[str], directions: Sequence[str], recorded: set[str]
) -> tuple[str, str]:
    """``(metric, direction)`` that chooses the best trial: the first objective, or
    ``select`` (a metric name, its direction an objective's, else minimize for a loss and
    maximize otherwise; or ``{metric: ..., direction: ...}``), a number the trials record."""
    if value in (None, ""):
        return objectives[0], directions[0]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"metric", "direction"})
        if unknown or "metric" not in value:
            raise ParameterError(
                "select", f"{dict(value)!r} is not allowed: a metric name, or {{metric, direction}}"
            )
        metric, direction = str(value["metric"]), value.get("direction")
    else:
        metric, direction = str(value), None
    if metric not in recorded:
        raise ParameterError(
            "select",
            f"{metric!r} is not a number the trials record; they record "
            + ", ".join(sorted(recorded)),
        )
    if direction is None:
        if metric in objectives:
            direction = directions[list(objectives).index(metric)]
        else:
            direction = "minimize" if metric.endswith("loss") else "maximize"
    direction = str(direction).lower()
    if direction not in DIRECTIONS:
        raise ParameterError("select.direction", f"{direction!r} is not one of minimize, maximize")
    return metric, direction


def best_trial(study: optuna.Study, config: TuneConfig) -> optuna.trial.FrozenTrial | None:
    """The complete trial with a model and the best selection metric, else None."""
    from optuna.trial import TrialState

    def score(trial) -> float | None:
        if config.select == config.objectives[0]:
            return trial.values[0]
        return (trial.user_attrs.get(METRICS_ATTR) or {}).get(config.select)

    candidates = [
        (score(t), t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(MODEL_URI_ATTR)
    ]
    candidates = [(s, t) for s, t in candidates if s is not None]
    if not candidates:
        return None
    sign = 1 if config.select_direction == "minimize" else -1
    return min(candidates, key=lambda c: (sign * c[0], c[1].number))[1]


def registers_here(study: optuna.Study, n_trials: int, ran: Sequence[int]) -> bool:
    """Whether this process (it ran trials ``ran``) is the one that registers: the study
    holds ``n_trials`` finished trials and the last one to finish is this process's."""
    finished = [t for t in study.get_trials(deepcopy=False) if is_finished(t)]
    if len(finished) < n_trials:
        return False
    last = max(finished, key=lambda t: (t.datetime_complete, t.number))
    return last.number in set(ran)


def register_best(
    config: TuneConfig, handle: StudyHandle, study_run: StudyRun, parent_run_id: str | None
) -> dict[str, Any] | None:
    """Register the best trial's model if this process is the one to (see the module),
    alias it ``challenger`` and record trial and version on the parent run and in the
    study; ``{name, version, trial, alias}``, the study's earlier one, or None."""
    study = handle.study
    earlier = study.user_attrs.get(REGISTERED_ATTR)
    if earlier:
        log.info("the study registered %s version %s already", earlier["name"], earlier["version"])
        return dict(earlier)
    if not config.register_model or study_run.stopped:
        return None
    if not registers_here(study, config.n_trials, study_run.ran):
        log.info("the process that ran the study's last trial registers its best model")
        return None
    best = best_trial(study, config)
    if best is None:
        log.warning("no complete trial with a model: nothing registered")
        return None
    uri = best.user_attrs[MODEL_URI_ATTR]
    metrics = best.user_attrs.get(METRICS_ATTR) or {}
    tags = registry.version_tags(
        data_fingerprint=_fingerprint(best, config),
        hptuning_tag=handle.hptuning_tag,
        metrics=metrics,
    )
    tags["study_name"] = config.study_name
    tags["trial_number"] = str(best.number)
    version = registry.register(uri, config.registered_model_name, tags, config.mlflow_tracking_uri)
    number = str(version.version)
    registry.set_alias(
        config.registered_model_name, registry.CHALLENGER, number, config.mlflow_tracking_uri
    )
    registered = {
        "name": config.registered_model_name,
        "version": number,
        "trial": best.number,
        "alias": registry.CHALLENGER,
    }
    study.set_user_attr(REGISTERED_ATTR, registered)
    if parent_run_id:
        client = registry.client(config.mlflow_tracking_uri)
        for key in ("name", "version", "trial"):
            client.set_tag(parent_run_id, f"registered_model_{key}", str(registered[key]))
    log.info(
        "trial %d's model registered as %s version %s (alias %s)",
        best.number,
        config.registered_model_name,
        number,
        registry.CHALLENGER,
    )
    return registered


def _fingerprint(trial: optuna.trial.FrozenTrial, config: TuneConfig) -> str | None:
    """The fingerprint of the processed data set the trial trained on (its run's
    ``data_path``), None if it cannot be read here."""
    # Here, not at the top: lib.data.prep costs the runner 0.35 s and pyarrow (measured) when it
    # checks a tune's parameters (lib.tuning.config imports this module).
    from lib.data import prep

    try:
        run = registry.client(config.mlflow_tracking_uri).get_run(trial.user_attrs[RUN_ID_ATTR])
        data_path = run.data.params["data_path"]
        return prep.read_manifest(os.fspath(data_path)).get("fingerprint")
    except Exception as exc:  # noqa: BLE001  (a missing tag must not lose the registration)
        log.warning("the data set's fingerprint of trial %d is unknown: %s", trial.number, exc)
        return None
