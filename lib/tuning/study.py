"""Opening a study: created, or resumed (or joined) when its storage holds it already.

A study keeps in its user attributes what later processes on the same study must agree
on: its objectives, its ``hptuning_tag`` and the id of its MLflow parent run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.errors import ParameterError
from lib.tuning.config import TuneConfig
from lib.tuning.storage import make_sampler, open_storage, public_storage

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

ATTR_PARENT_RUN = "mlflow_parent_run_id"
ATTR_TAG = "hptuning_tag"
ATTR_OBJECTIVES = "objectives"


@dataclass
class StudyHandle:
    """An open study and what this tune process knows about it."""

    study: optuna.Study
    created: bool  # False: an existing study was resumed or joined
    hptuning_tag: str


def open_study(config: TuneConfig) -> StudyHandle:
    """Create the study, or load it when it exists in the storage (resume, or another tune
    process on the same study). An existing study must have the same directions and
    objectives and a compatible search space: ParameterError names the key otherwise."""
    import optuna

    storage = open_storage(config.storage, config.heartbeat_interval, config.grace_period)
    sampler = make_sampler(config.sampler, config.search_space)
    try:
        study = optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            sampler=sampler,
            directions=config.directions,
            load_if_exists=False,
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.study_name, storage=storage, sampler=sampler)
        created = False
    if not created:
        check_existing(study, config)
    tag = (
        config.hptuning_tag
        or os.environ.get("MLFLOW_HPTUNING_TAG")
        or study.user_attrs.get(ATTR_TAG)
        or str(int(time.time()))
    )
    if created:
        study.set_user_attr(ATTR_OBJECTIVES, config.objectives)
        study.set_user_attr(ATTR_TAG, tag)
        for params in config.enqueue_trials:
            study.enqueue_trial(params, user_attrs={"enqueued": True})
    log.info(
        "study %r %s in %s: %d trials so far; hptuning_tag %s",
        config.study_name,
        "created" if created else "loaded",
        public_storage(config.storage) or "memory",
        len(study.trials),
        tag,
    )
    return StudyHandle(study=study, created=created, hptuning_tag=tag)


def check_existing(study: optuna.Study, config: TuneConfig) -> None:
    """Refuse a configuration that the stored ``study`` cannot continue with."""
    from optuna.distributions import check_distribution_compatibility

    directions = [d.name.lower() for d in study.directions]
    if directions != config.directions:
        raise ParameterError(
            "directions",
            f"{config.directions} differ from those of the stored study "
            f"{config.study_name!r} ({directions}); use another study_name",
        )
    stored = study.user_attrs.get(ATTR_OBJECTIVES)
    if stored is not None and list(stored) != config.objectives:
        raise ParameterError(
            "objectives",
            f"{config.objectives} differ from those of the stored study "
            f"{config.study_name!r} ({stored}); use another study_name",
        )
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            if name in config.search_space:
                try:
                    check_distribution_compatibility(dist, config.search_space[name].distribution())
                except ValueError as exc:
                    raise ParameterError(
                        f"search_space.{name}",
                        f"incompatible with trial {trial.number} of the stored study: {exc}",
                    ) from None
