"""Hyperparameter tuning: an Optuna study whose trials are executed train notebooks.

One module per concern:

- :mod:`~lib.tuning.attrs`: the names of what a study and its trials record;
- :mod:`~lib.tuning.config`: the tune notebook's parameters over ``conf/hptuning.yml``,
  read and checked before anything runs (:func:`load_config`);
- :mod:`~lib.tuning.train_notebook`: what the tune knows of the train notebook (its
  parameters, what it glues) and the checks of ``train_params`` against it;
- :mod:`~lib.tuning.space`: the search space, its parsing and sampling;
- :mod:`~lib.tuning.storage`: samplers and storages (in memory, an RDB URL, a journal file
  with the heartbeat that Optuna's journal storage lacks);
- :mod:`~lib.tuning.study`: creating, resuming or joining a study (:func:`open_study`);
- :mod:`~lib.tuning.loop`: exactly ``n_trials`` finished (complete or pruned) trials,
  ``n_jobs`` at a time, even with several processes on one storage (:func:`run_study`);
- :mod:`~lib.tuning.pruning`: the ``pruner`` and ``prune_on`` settings, and the trial
  kernel's side: reporting each epoch, and a pruned trial's end (:func:`stop_if_pruned`);
- :mod:`~lib.tuning.backend`: the seam, what a trial is and the :class:`TrialBackend` that
  runs trials (the runner's: train notebooks in warm kernels), :func:`open_backend`;
- :mod:`~lib.tuning.trials`: a trial's parameters, the checks before the trials,
  :func:`prepare` and :func:`run_trials`;
- :mod:`~lib.tuning.parent_run`: the study's MLflow parent run;
- :mod:`~lib.tuning.registration`: the best trial's model registered once per study
  (:func:`register_best`);
- :mod:`~lib.tuning.summary`: the trials table, best trials, plots and importances.

Importing the package imports none of them: the train notebook imports
``lib.tuning.pruning`` alone, and its code closure (what makes the train stage outdated,
``lib/core/code_deps.py``) must not hold the tune's modules. The names below are resolved
from their module on first access (``tuning.open_study``), for interactive use and tests;
the project's own code imports them from their module, which the code closure follows.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES: dict[str, tuple[str, ...]] = {
    "attrs": ("PRUNED_ERROR", "PRUNED_SCRAP", "SURPLUS_ATTR"),
    "backend": (
        "ENTRY_POINT_GROUP",
        "TrialBackend",
        "TrialFunction",
        "TrialOutcome",
        "open_backend",
    ),
    "config": (
        "CONFIG_KEYS",
        "DEFAULTS",
        "DEFAULT_CONFIG_FILE",
        "TuneConfig",
        "default_kernel_rss_mib",
        "load_config",
        "memory_limit_mib",
        "read_config_file",
        "requested_n_jobs",
    ),
    "loop": ("StudyRun", "TuningError", "objective_values", "run_study"),
    "parent_run": ("finish_parent_run", "start_parent_run"),
    "pruning": ("make_pruner",),
    "registration": ("register_best",),
    "space": ("SearchParam", "parse_param", "parse_search_space", "sample"),
    "storage": ("make_sampler", "open_storage"),
    "study": ("StudyHandle", "default_trials_dir", "open_study"),
    "summary": (
        "best_trials",
        "describe_importances",
        "describe_learning_curves",
        "describe_study",
        "param_importances",
        "plot_importances",
        "plot_learning_curves",
        "plot_study",
        "trials_table",
    ),
    "train_notebook": ("RESERVED", "numeric_scraps", "train_notebook_parameters"),
    "trials": (
        "preflight_cases",
        "prepare",
        "run_trials",
        "trial_params",
        "trials_tracking_uri",
    ),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    # A name of __all__: from its module, imported now (a submodule is found by the import
    # system before this is asked).
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
