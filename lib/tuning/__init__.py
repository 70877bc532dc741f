"""Hyperparameter tuning: an Optuna study whose trials are executed train notebooks.

One module per concern:

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
- :mod:`~lib.tuning.trials`: the seam, what a trial is and the :class:`TrialBackend` that
  runs trials (the runner's: train notebooks in warm kernels), :func:`prepare` and
  :func:`run_trials`;
- :mod:`~lib.tuning.parent_run`: the study's MLflow parent run;
- :mod:`~lib.tuning.registration`: the best trial's model registered once per study
  (:func:`register_best`);
- :mod:`~lib.tuning.summary`: the trials table, best trials, plots and importances.
"""

from lib.tuning.config import (
    CONFIG_KEYS,
    DEFAULT_CONFIG_FILE,
    DEFAULTS,
    TuneConfig,
    default_kernel_rss_mib,
    load_config,
    memory_limit_mib,
    read_config_file,
    requested_n_jobs,
)
from lib.tuning.loop import SURPLUS_ATTR, StudyRun, TuningError, objective_values, run_study
from lib.tuning.parent_run import finish_parent_run, start_parent_run
from lib.tuning.pruning import PRUNED_ERROR, PRUNED_SCRAP, make_pruner
from lib.tuning.registration import register_best
from lib.tuning.space import SearchParam, parse_param, parse_search_space, sample
from lib.tuning.storage import make_sampler, open_storage
from lib.tuning.study import StudyHandle, open_study
from lib.tuning.summary import (
    best_trials,
    describe_importances,
    describe_learning_curves,
    describe_study,
    param_importances,
    plot_importances,
    plot_learning_curves,
    plot_study,
    trials_table,
)
from lib.tuning.train_notebook import RESERVED, numeric_scraps, train_notebook_parameters
from lib.tuning.trials import (
    ENTRY_POINT_GROUP,
    TrialBackend,
    TrialFunction,
    TrialOutcome,
    default_trials_dir,
    open_backend,
    preflight_cases,
    prepare,
    run_trials,
    trial_params,
    trials_tracking_uri,
)

__all__ = [
    "CONFIG_KEYS",
    "DEFAULTS",
    "DEFAULT_CONFIG_FILE",
    "ENTRY_POINT_GROUP",
    "PRUNED_ERROR",
    "PRUNED_SCRAP",
    "RESERVED",
    "SURPLUS_ATTR",
    "SearchParam",
    "StudyHandle",
    "StudyRun",
    "TrialBackend",
    "TrialFunction",
    "TrialOutcome",
    "TuneConfig",
    "TuningError",
    "best_trials",
    "default_kernel_rss_mib",
    "default_trials_dir",
    "describe_importances",
    "describe_learning_curves",
    "describe_study",
    "finish_parent_run",
    "load_config",
    "make_pruner",
    "make_sampler",
    "memory_limit_mib",
    "numeric_scraps",
    "objective_values",
    "open_backend",
    "open_storage",
    "open_study",
    "param_importances",
    "parse_param",
    "parse_search_space",
    "plot_importances",
    "plot_learning_curves",
    "plot_study",
    "prepare",
    "preflight_cases",
    "read_config_file",
    "register_best",
    "requested_n_jobs",
    "run_study",
    "run_trials",
    "sample",
    "start_parent_run",
    "train_notebook_parameters",
    "trial_params",
    "trials_tracking_uri",
    "trials_table",
]
