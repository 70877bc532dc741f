"""Opening a study: created, or resumed (or joined) when its storage holds it already.

A study keeps in its user attributes what later processes on the same study must agree
on: its objectives, its ``hptuning_tag`` and the id of its MLflow parent run. It names its
objectives (``set_metric_names``) for optuna-dashboard and Optuna's plots.

With a pruner the trial kernels report to the study through its storage, so a study that
would live in memory (``storage: null``) lives in a journal file in the run folder instead,
for the time of the run (:data:`TEMPORARY_JOURNAL`).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.core import paths
from lib.core.errors import ParameterError
from lib.tuning.attrs import ENQUEUED_ATTR, STUDY_OBJECTIVES_ATTR, TAG_ATTR
from lib.tuning.config import TuneConfig
from lib.tuning.pruning import make_pruner
from lib.tuning.storage import make_sampler, open_storage, public_storage

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

TEMPORARY_JOURNAL = Path("study") / "study.journal"  # in the run folder, storage null + pruner


@dataclass
class StudyHandle:
    """An open study and what this tune process knows about it."""

    study: optuna.Study
    created: bool  # False: an existing study was resumed or joined
    hptuning_tag: str


def default_trials_dir() -> Path:
    """``<run folder>/trials`` when the runner executes the tune notebook
    ($RUNNER_RUN_DIR), else a new ``runs/<UTC time>-tune/trials``."""
    run_dir = os.environ.get(paths.RUN_DIR_ENV)
    if run_dir:
        return Path(run_dir) / "trials"
    return paths.new_run_dir("tune") / "trials"


def _trial_storage(config: TuneConfig, run_dir: Path | None) -> str | None:
    """Where the trial kernels reach the study: the storage, or with storage null and a
    pruner, a new journal file in the run folder (``run_dir``, by default the folder that
    :func:`default_trials_dir` makes the trials' parent)."""
    if config.storage is not None or config.pruner is None:
        return config.storage
    if run_dir is None:
        run_dir = default_trials_dir().parent
    journal = Path(run_dir) / TEMPORARY_JOURNAL
    journal.unlink(missing_ok=True)  # a study of this run only
    log.info(
        "storage null with a pruner: the study lives in %s for the time of this run (the trial "
        "kernels report their epochs to it); it is temporary: nothing resumes it",
        journal,
    )
    return str(journal)


def open_study(config: TuneConfig, run_dir: str | Path | None = None) -> StudyHandle:
    """Create the study, or load it when it exists in the storage (resume, or another tune
    process on the same study). An existing study must have the same directions and
    objectives and a compatible search space: ParameterError names the key otherwise.

    Sets ``config.trial_storage``, where the trials reach the study: with ``storage: null``
    and a pruner, a temporary journal file in ``run_dir`` (the tune's run folder)."""
    import optuna

    config.trial_storage = _trial_storage(config, Path(run_dir) if run_dir else None)
    storage = open_storage(config.trial_storage, config.heartbeat_interval, config.grace_period)
    sampler = make_sampler(config.sampler, config.search_space)
    pruner = make_pruner(config.pruner) if config.pruner else None
    try:
        study = optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=config.directions,
            load_if_exists=False,
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
        )
        created = False
    if not created:
        check_existing(study, config)
    tag = (
        config.hptuning_tag
        or os.environ.get("MLFLOW_HPTUNING_TAG")
        or study.user_attrs.get(TAG_ATTR)
        or str(int(time.time()))
    )
    with warnings.catch_warnings():  # experimental in Optuna 5; on resume it names old studies
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(config.objectives)
    if created:
        study.set_user_attr(STUDY_OBJECTIVES_ATTR, config.objectives)
        study.set_user_attr(TAG_ATTR, tag)
        for params in config.enqueue_trials:
            study.enqueue_trial(params, user_attrs={ENQUEUED_ATTR: True})
    log.info(
        "study %r %s in %s: %d trials so far; hptuning_tag %s",
        config.study_name,
        "created" if created else "loaded",
        public_storage(config.trial_storage) or "memory",
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
    stored = study.user_attrs.get(STUDY_OBJECTIVES_ATTR)
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
