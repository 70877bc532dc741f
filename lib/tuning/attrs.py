"""The names a study and its trials record: Optuna user and system attributes, and the
scraps a trial's train notebook glues that the tune reads.

One place for them, so that the modules that write an attribute (the trial loop, the
study, the registration, the storage) and those that read it (the summary, the runner's
trial backend, the train notebook's pruning) agree without importing each other. A study
already in a storage holds these names: renaming one orphans what earlier runs recorded.
"""

# -- a trial's user attributes -----------------------------------------------------------
SURPLUS_ATTR = "surplus"  # a trial that another process's trial left no room for
METRICS_ATTR = "metrics"  # the numbers its train notebook glued (what `select` picks by)
OBJECTIVES_ATTR = "objectives"  # {objective: value} of a complete trial; also the study's
SECONDS_ATTR = "seconds"  # how long the trial ran
ERROR_ATTR = "error"  # a failed trial's error (its first 2000 characters)
WORKER_ATTR = "worker"  # host:pid:thread that ran it
ENQUEUED_ATTR = "enqueued"  # asked for by `enqueue_trials`
NOTEBOOK_ATTR = "notebook"  # the trial's executed train notebook
RUN_ID_ATTR = "mlflow_run_id"  # the trial's MLflow run
MODEL_URI_ATTR = "model_uri"  # the trial's logged model (a registration candidate)

# -- a trial's system attributes ---------------------------------------------------------
HEARTBEAT_ATTR = "heartbeat"  # a journal trial's last heartbeat (Unix time)
RETRIED_ATTR = "failed_trial"  # set by Optuna's retry callback on the retry of a stale trial

# -- the study's user attributes ---------------------------------------------------------
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run
TAG_ATTR = "hptuning_tag"
STUDY_OBJECTIVES_ATTR = OBJECTIVES_ATTR  # the objectives' names, checked on resume
REGISTERED_ATTR = "registered_model"  # {name, version, trial}: registered once per study

# -- what a pruned trial's notebook leaves -----------------------------------------------
PRUNED_SCRAP = "pruned_at_epoch"  # glued (and an MLflow tag): the 1-based epoch of its last report
PRUNED_ERROR = "TrialPruned"  # the class name a pruned trial's notebook stops with
