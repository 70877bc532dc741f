"""What a trial is to the tune notebook: the train notebook's parameters for one trial
(:func:`trial_params`), the checks of both ends of every searched range before the
trials start (:func:`preflight_cases`, :func:`check_tune_params`), and the tune's two
steps around a backend (:mod:`lib.tuning.backend`): :func:`prepare` and
:func:`run_trials`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lib.core.errors import ParameterError
from lib.core.params import as_mapping
from lib.core.speedups import import_in_background
from lib.model.train_checks import check_train_values
from lib.tracking.runs import resolve_tracking_uri
from lib.tuning.backend import DEFAULT_BACKEND, TrialBackend, open_backend
from lib.tuning.config import DEFAULT_CONFIG_FILE, TuneConfig, load_config, requested_n_jobs
from lib.tuning.loop import StudyRun, run_study
from lib.tuning.study import TEMPORARY_JOURNAL, StudyHandle
from lib.tuning.summary import SUMMARY_MODULES


def trial_params(
    config: TuneConfig,
    number: int,
    sampled: Mapping[str, Any],
    *,
    trial_dir: Path,
    parent_run_id: str | None,
    hptuning_tag: str | None,
) -> dict[str, Any]:
    """The train notebook's parameters for one trial: fixed ``train_params``, the sampled
    values (dotted names set a key of a mapping parameter), and what the tune sets; with a
    pruner, ``tuning_trial``: where the trial reports its epochs (its study, storage and
    number, the pruner and ``prune_on``), else None."""
    params: dict[str, Any] = {k: _copy(v) for k, v in config.train_params.items()}
    for name, value in sampled.items():
        top, _, sub = name.partition(".")
        if sub:
            base = params.get(top, config.train_defaults.get(top)) or {}
            params[top] = {**base, sub: value}
        else:
            params[name] = value
    tags = as_mapping("train_params.mlflow_tags", params.get("mlflow_tags"))
    tags.update({"study_name": config.study_name, "trial_number": str(number)})
    params.update(
        model_dir=str(Path(trial_dir) / "model"),
        setup_mlflow=config.setup_mlflow,
        mlflow_tracking_uri=config.mlflow_tracking_uri,
        mlflow_exp_name=config.mlflow_exp_name,
        mlflow_artifact_location=config.mlflow_artifact_location,
        mlflow_run_name=f"trial-{number}",
        mlflow_parent_run_id=parent_run_id,
        mlflow_tags=tags,
        hptuning_tag=hptuning_tag,
        tuning_trial=_tuning_trial(config, number),
        register_model=False,  # the tune registers one model, the best, at the end
    )
    return params


def _tuning_trial(config: TuneConfig, number: int) -> dict[str, Any] | None:
    if config.pruner is None:
        return None
    storage = config.trial_storage or config.storage
    if storage is None:
        raise RuntimeError(
            "a pruner with storage null needs the study opened by lib.tuning.open_study "
            "first (it keeps the study in a journal file the trials can reach)"
        )
    return {
        "study_name": config.study_name,
        "storage": storage,  # no password (load_config); ${VAR} is expanded in the kernel
        "trial_number": number,
        "pruner": dict(config.pruner),
        "prune_on": config.prune_on,
    }


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


def preflight_cases(config: TuneConfig, trial_dir: Path) -> list[dict[str, Any]]:
    """Parameter sets that try every searched parameter's extreme values (or choices),
    one parameter at a time, the others at their first value; each case's ``"params"`` is
    the whole parameter set, as the train notebook's first cell sees it."""
    base = {name: p.edge_values()[0] for name, p in config.search_space.items()}
    cases = [{"varied": None, "sampled": base}]
    for name, param in config.search_space.items():
        for value in param.edge_values()[1:]:
            cases.append({"varied": name, "sampled": {**base, name: value}})
    for case in cases:
        params = trial_params(
            config, 0, case["sampled"], trial_dir=trial_dir, parent_run_id=None, hptuning_tag=None
        )
        case["params"] = {**config.train_defaults, **params}
    return cases


def check_tune_params(params: Mapping[str, Any]) -> TuneConfig:
    """What the runner checks of the tune notebook's parameters before it starts a kernel:
    the configuration (:func:`load_config`), and the train parameters of the trials at both
    ends of every searched range with the checks that need neither data nor TensorFlow
    (:func:`lib.model.train_checks.check_train_values`; the tune makes the full checks again in a
    trial kernel). ParameterError names the key to change."""
    config = load_config(params, params.get("config_file"))
    checked = config
    if config.pruner is not None and config.storage is None:
        # No study is open yet: its trials will reach it through the run's temporary journal
        # (lib.tuning.study), not made yet; nothing opens it here.
        checked = dataclasses.replace(config, trial_storage=str(TEMPORARY_JOURNAL))
    cases = preflight_cases(checked, Path(params.get("trials_dir") or "runs") / "trial-check")
    for index, case in enumerate(cases):
        try:
            check_train_values(case["params"])
        except ParameterError as exc:
            found = {"index": index, "varied": case["varied"], "name": exc.name}
            error = f"ParameterError: {exc}"
            raise preflight_error(config, cases, {**found, "error": error}) from None
    return config


def preflight_error(
    config: TuneConfig, cases: list[dict[str, Any]], found: Mapping[str, Any]
) -> ParameterError:
    """The configuration key to blame for a failed check (``found``, see
    :meth:`TrialBackend.check`): the searched parameter whose value was refused, else the
    fixed train parameter (or the train notebook's default) that the error names."""
    varied, name = found.get("varied"), found.get("name")
    if varied is not None:
        index = found.get("index")
        # Without the index, the first case that varied the parameter (the one, unless a
        # categorical parameter has three choices or more).
        case = (
            cases[index]
            if isinstance(index, int)
            else next(c for c in cases if c["varied"] == varied)
        )
        return ParameterError(
            f"search_space.{varied}",
            f"the train notebook refuses {case['sampled'][varied]!r}: {found['error']}",
        )
    searched = {n.partition(".")[0]: n for n in config.search_space}
    top = None if name is None else str(name).partition(".")[0]  # model_params.ngrams
    if name in config.search_space:
        key = f"search_space.{name}"
    elif name == top and top in searched:  # model_params, when model_params.x is searched
        key = f"search_space.{searched[top]}"
    elif top in config.train_params:
        key = f"train_params.{name}"
    else:
        key = "train_params" if name is None else f"train_params.{name} (the train default)"
    return ParameterError(key, f"the train notebook refuses it: {found['error']}")


def trials_tracking_uri(params: Mapping[str, Any]) -> str | None:
    """The MLflow store that the trials will use (None when tracking is off), known before
    the configuration is checked: the trial kernels import its modules while warming up."""
    if params.get("setup_mlflow") in (False, "false", "False"):
        return None
    return resolve_tracking_uri(params.get("mlflow_tracking_uri"))


def prepare(
    params: Mapping[str, Any],
    config_file: str | Path | None = DEFAULT_CONFIG_FILE,
    *,
    backend_name: str = DEFAULT_BACKEND,
) -> tuple[TuneConfig, TrialBackend]:
    """``(config, backend)``: the backend first, so that its trial kernels start (importing
    TensorFlow takes a while), then the configuration is read and checked
    (:func:`load_config`); a bad configuration closes the backend and raises
    ParameterError."""
    backend = open_backend(
        requested_n_jobs(params, config_file), trials_tracking_uri(params), backend_name
    )
    try:
        config = load_config(params, config_file)
        backend.configure(config)
    except BaseException:
        backend.close()
        raise
    return config, backend


def run_trials(
    config: TuneConfig,
    handle: StudyHandle,
    backend: TrialBackend,
    trials_dir: Path,
    parent_run_id: str | None,
    *,
    check: bool = True,
) -> StudyRun:
    """The tune notebook's main step: check the train parameters where the trials run
    (``check``: both ends of every searched range; ParameterError names the key the train
    notebook refuses), then run the study with the backend's trials. Closing the backend
    is the caller's (``with backend:``)."""
    # The summary's heavy imports (optuna.importance alone takes seconds) load while the
    # trials run, not after them.
    import_in_background(SUMMARY_MODULES, "summary-imports")
    trials_dir = Path(trials_dir)
    trials_dir.mkdir(parents=True, exist_ok=True)
    if check:
        cases = preflight_cases(config, trials_dir / "trial-check")
        found = backend.check(cases)
        # The check probes that each case's model_dir is writable (it makes the folder): no
        # trial ran there, so nothing of it stays beside the trials' folders.
        shutil.rmtree(trials_dir / "trial-check", ignore_errors=True)
        if found is not None:
            raise preflight_error(config, cases, found)
    trials = backend.trial_function(config, trials_dir, parent_run_id, handle.hptuning_tag)
    return run_study(handle.study, config, trials, on_interrupt=backend.interrupt)
