"""The seam between a study and where its trials run.

``lib`` decides what a trial is: a :data:`TrialFunction`, sampled values in and a
:class:`TrialOutcome` out, with the train notebook's parameters from
:func:`trial_params`. Where trials run is a :class:`TrialBackend`'s business; the runner
provides one (trials as executed train notebooks, in pooled kernels) and plugs it in
through the Python entry-point group :data:`ENTRY_POINT_GROUP` (declared in
``pyproject.toml``), so that ``lib`` names no runner module. Any callable with the trial
function's signature can stand in for a backend's (tests, benchmarks):
:func:`lib.tuning.run_study` takes one directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from lib import paths
from lib.errors import ParameterError, UserError
from lib.speedups import import_in_background
from lib.tuning.config import (
    DEFAULT_CONFIG_FILE,
    TuneConfig,
    as_mapping,
    load_config,
    requested_n_jobs,
)
from lib.tuning.loop import StudyRun, run_study
from lib.tuning.study import TEMPORARY_JOURNAL, StudyHandle
from lib.tuning.summary import SUMMARY_MODULES

ENTRY_POINT_GROUP = "imdb_sentiment.trial_backends"
DEFAULT_BACKEND = "notebook"


@dataclass
class TrialOutcome:
    """What running one trial gave: the train notebook's scraps, or an error."""

    scraps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)


# (trial number, sampled values) -> outcome; should not raise for a failing trial.
TrialFunction = Callable[[int, dict[str, Any]], TrialOutcome]


class TrialBackend(Protocol):
    """Runs a study's trials somewhere (the runner: train notebooks in pooled kernels).
    Made before the configuration is read, so that it can warm up meanwhile; a context
    manager that closes it."""

    def configure(self, config: TuneConfig) -> None:
        """Adapt to the checked configuration (``n_jobs``, kernel limits)."""

    def check(self, cases: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Run :func:`lib.train_checks.check_train_params` on each case's ``"params"``
        where the trials run; the first failure as ``{"varied": ..., "name": ...,
        "error": "EName: message"}`` (with ``"index"``, the failing case's position in
        ``cases``, if the backend knows it), else None."""

    def trial_function(
        self,
        config: TuneConfig,
        trials_dir: Path,
        parent_run_id: str | None,
        hptuning_tag: str | None,
    ) -> TrialFunction:
        """The function that runs one trial, into ``trials_dir/trial-NNN/``."""

    def interrupt(self) -> None:
        """Stop the trials that are running (the user pressed Ctrl-C)."""

    def close(self) -> None:
        """Release everything the backend holds (its kernels)."""

    def __enter__(self) -> TrialBackend: ...

    def __exit__(self, *exc: object) -> None: ...


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
    (:func:`lib.train_checks.check_train_values`; the tune makes the full checks again in a
    trial kernel). ParameterError names the key to change."""
    from lib.train_checks import check_train_values

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


def default_trials_dir() -> Path:
    """``<run folder>/trials`` when the runner executes the tune notebook
    ($RUNNER_RUN_DIR), else a new ``runs/<UTC time>-tune/trials``."""
    run_dir = os.environ.get(paths.RUN_DIR_ENV)
    if run_dir:
        return Path(run_dir) / "trials"
    return paths.new_run_dir("tune") / "trials"


def trials_tracking_uri(params: Mapping[str, Any]) -> str | None:
    """The MLflow store that the trials will use (None when tracking is off), known before
    the configuration is checked: the trial kernels import its modules while warming up."""
    if params.get("setup_mlflow") in (False, "false", "False"):
        return None
    from lib.tracking import resolve_tracking_uri

    return resolve_tracking_uri(params.get("mlflow_tracking_uri"))


def open_backend(
    n_jobs: int, tracking_uri: str | None, name: str = DEFAULT_BACKEND
) -> TrialBackend:
    """The trial backend registered as ``name`` in :data:`ENTRY_POINT_GROUP`, made with
    ``n_jobs`` and ``tracking_uri``; it starts warming up at once."""
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    if not found:
        raise UserError(
            f"no trial backend {name!r} in the entry points {ENTRY_POINT_GROUP!r}: the project "
            "is not installed; run scripts/setup.sh"
        )
    factory = next(iter(found)).load()
    return factory(n_jobs=n_jobs, tracking_uri=tracking_uri)


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
        if found is not None:
            raise preflight_error(config, cases, found)
    trials = backend.trial_function(config, trials_dir, parent_run_id, handle.hptuning_tag)
    return run_study(handle.study, config, trials, on_interrupt=backend.interrupt)
