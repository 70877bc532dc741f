"""Hyperparameter tuning: an Optuna study whose trials are executed train notebooks.

``load_config`` reads and checks the tune notebook's parameters (over ``conf/hptuning.yml``)
before anything runs; ``open_study`` creates or resumes the study in its storage (in memory,
an RDB URL, or a journal file) with heartbeats, so trials of a killed process are failed and
retried; ``run_study`` runs trials, ``n_jobs`` at a time, each as soon as a worker is free,
until the study holds exactly ``n_trials`` completed trials, even with several processes on
one storage. ``NotebookTrials`` runs one trial as an execution of ``notebooks/train.ipynb``
in a warm kernel of a ``runner.kernel_pool.KernelPool``; any callable with the same
signature (``(number, sampled) -> TrialOutcome``) can stand in for it (tests, benchmarks).
The rest summarises a study: the trials table, best trials, plots and the MLflow parent run.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lib import paths
from lib.params import as_bool, as_list
from lib.speedups import import_in_background

if TYPE_CHECKING:
    import optuna
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "conf/hptuning.yml"
KERNEL_NAME = "python3"  # the trial kernels' (runner.execute.KERNEL_NAME, without importing it)
# Used for keys that neither the parameters nor the config file set.
DEFAULTS: dict[str, Any] = {
    "sampler": {"name": "tpe", "seed": 123},
    "directions": ["minimize", "maximize"],
    "objectives": ["val_loss", "val_accuracy"],
    "study_name": "sentiment-classification",
    "storage": None,
    "n_trials": 3,
    "n_jobs": 1,
    "max_failures": 3,
    "search_space": {
        "val_split": {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025},
        "optimiser": {"type": "categorical", "choices": ["adam", "rmsprop"]},
    },
    "train_params": {},
    "enqueue_trials": [],
    "heartbeat_interval": 30,
    "grace_period": 120,
    "trial_html": False,
    "cell_timeout": None,
    "kernel_max_trials": None,
    "kernel_max_rss_mib": None,
}
CONFIG_KEYS = tuple(DEFAULTS)
TYPES = ("int", "float", "categorical")
_RANGE_KEYS = ("type", "low", "high", "step", "log")
DIRECTIONS = ("minimize", "maximize")
# Train parameters that the tune notebook sets for every trial itself.
RESERVED = {
    "model_dir": "each trial exports its model into its own run folder",
    "mlflow_parent_run_id": "each trial is a child of the study's parent run",
    "mlflow_run_name": "trials are named trial-<number>",
    "hptuning_tag": "set it with the tune notebook's hptuning_tag parameter",
}
# MLflow settings may be fixed (train_params) but not searched.
_NOT_SEARCHABLE_PREFIXES = ("mlflow_", "setup_mlflow")
MEMORY_STORAGE = "memory"  # a storage value that keeps the study in memory, like null
SURPLUS_ATTR = "surplus"
_STUDY_ATTR_PARENT = "mlflow_parent_run_id"
_STUDY_ATTR_TAG = "hptuning_tag"
_STUDY_ATTR_OBJECTIVES = "objectives"


class TuningConfigError(ValueError):
    """The tuning configuration is not usable; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")


class TuningError(RuntimeError):
    """The study stopped before it was complete (too many failed trials)."""


# ---------------------------------------------------------------------------------------
# Search space
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchParam:
    """One searched train parameter. ``name`` may be dotted (``model_params.ngram_max``
    sets one key of the ``model_params`` mapping)."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self):
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        cls = IntDistribution if self.type == "int" else FloatDistribution
        if self.type == "int":
            return cls(self.low, self.high, log=self.log, step=self.step or 1)
        return cls(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def edge_values(self) -> list[Any]:
        """Values that together exercise the whole range: both ends, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        high = self.high
        if self.step:  # the last point of the grid
            steps = int(
                (Decimal(str(self.high)) - Decimal(str(self.low))) / Decimal(str(self.step))
            )
            high = self.low + steps * self.step
            high = round(high, 12) if self.type == "float" else int(high)
        return [self.low] if high == self.low else [self.low, high]

    def grid(self) -> list[Any] | None:
        """Every value (categorical or stepped), else None."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step:
            n = int((Decimal(str(self.high)) - Decimal(str(self.low))) / Decimal(str(self.step)))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        return None

    def contains(self, value: Any) -> bool:
        dist = self.distribution()
        try:
            return bool(dist._contains(dist.to_internal_repr(value)))
        except (ValueError, TypeError):
            return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_param(name: str, spec: Any) -> SearchParam:
    """One search-space entry; TuningConfigError names ``search_space.<name>[.<key>]``."""
    key = f"search_space.{name}"
    if not isinstance(spec, Mapping):
        raise TuningConfigError(
            key, f"{spec!r} is not a mapping such as {{type: float, low: 0.1, high: 0.3}}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise TuningConfigError(
            f"{key}.type", f"unknown type {kind!r}; allowed: {', '.join(TYPES)}"
        )
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "step", "log"}
    )
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise TuningConfigError(
            f"{key}.{unknown[0]}",
            f"unknown key for type {kind}; allowed: {', '.join(sorted(allowed))}",
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise TuningConfigError(f"{key}.choices", f"{choices!r} is not a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise TuningConfigError(
                    f"{key}.choices",
                    f"{choice!r} is not allowed: choices are strings, numbers, booleans or null",
                )
        if len({json.dumps(c) for c in choices}) < len(choices):
            raise TuningConfigError(f"{key}.choices", f"{list(choices)} has duplicates")
        return SearchParam(name, kind, choices=tuple(choices))

    for bound in ("low", "high"):
        if bound not in spec:
            raise TuningConfigError(f"{key}.{bound}", f"missing (type {kind} needs low and high)")
        value = spec[bound]
        if not _is_number(value) or (kind == "int" and not float(value).is_integer()):
            what = "an integer" if kind == "int" else "a number"
            raise TuningConfigError(f"{key}.{bound}", f"{value!r} is not {what}")
    low, high = spec["low"], spec["high"]
    if kind == "int":
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if low > high:
        raise TuningConfigError(f"{key}.low", f"low {low} is above high {high}")
    log_scale = spec.get("log", False)
    if not isinstance(log_scale, bool):
        raise TuningConfigError(f"{key}.log", f"{log_scale!r} is not true or false")
    step = spec.get("step")
    if log_scale and step is not None:
        raise TuningConfigError(f"{key}.step", "step and log cannot be used together")
    if log_scale and low <= 0:
        raise TuningConfigError(f"{key}.low", f"low {low} must be above 0 with log: true")
    if step is not None:
        if not _is_number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            what = "a positive integer" if kind == "int" else "a positive number"
            raise TuningConfigError(f"{key}.step", f"{step!r} is not {what}")
        step = int(step) if kind == "int" else float(step)
        try:
            fits = (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step)) == 0
        except InvalidOperation:
            fits = False
        if not fits:
            raise TuningConfigError(
                f"{key}.step",
                f"step {step} does not fit the range [{low}, {high}]: high - low must be a "
                "whole number of steps",
            )
    return SearchParam(name, kind, low=low, high=high, step=step, log=log_scale)


def parse_search_space(space: Any) -> dict[str, SearchParam]:
    """The search space, checked; TuningConfigError names the bad key."""
    if isinstance(space, str):
        space = _parse_yaml("search_space", space)
    if not isinstance(space, Mapping) or not space:
        raise TuningConfigError("search_space", f"{space!r} is not a non-empty mapping")
    return {str(name): parse_param(str(name), spec) for name, spec in space.items()}


def sample(trial: optuna.Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Ask the trial for a value of every searched parameter."""
    return {name: param.suggest(trial) for name, param in space.items()}


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


@dataclass
class TuneConfig:
    """Everything a study needs, checked. Build it with :func:`load_config`."""

    search_space: dict[str, SearchParam]
    directions: list[str]
    objectives: list[str]
    sampler: dict[str, Any]
    study_name: str
    storage: str | None
    n_trials: int
    n_jobs: int
    max_failures: int
    train_params: dict[str, Any]
    enqueue_trials: list[dict[str, Any]]
    heartbeat_interval: int
    grace_period: int
    trial_html: bool
    cell_timeout: int | None
    kernel_max_trials: int | None
    kernel_max_rss_mib: float | None
    hptuning_tag: str | None = None  # the parameter or $MLFLOW_HPTUNING_TAG; see open_study
    setup_mlflow: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_exp_name: str = "sentiment-classification"
    mlflow_artifact_location: str | None = None
    train_defaults: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A plain view, for the notebook and the parent run's parameters."""
        return {
            "study_name": self.study_name,
            "storage": _public_storage(self.storage),
            "n_trials": self.n_trials,
            "n_jobs": self.n_jobs,
            "max_failures": self.max_failures,
            "sampler": self.sampler,
            "objectives": self.objectives,
            "directions": self.directions,
            "search_space": {n: _spec_text(p) for n, p in self.search_space.items()},
            "train_params": self.train_params,
            "mlflow": self.setup_mlflow,
        }


def _spec_text(p: SearchParam) -> str:
    if p.type == "categorical":
        return f"categorical {list(p.choices)}"
    extra = " log" if p.log else (f" step {p.step}" if p.step else "")
    return f"{p.type} [{p.low}, {p.high}]{extra}"


def _parse_yaml(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TuningConfigError(key, f"{text!r} does not parse as YAML/JSON: {exc}") from None


def _as_mapping(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = _parse_yaml(key, value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise TuningConfigError(key, f"{value!r} is not a mapping")
    return dict(value)


def _as_int(key: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TuningConfigError(key, f"{value!r} is not an integer >= {minimum}")
    return value


def train_notebook_parameters(path: str | Path | None = None) -> dict[str, Any]:
    """The train notebook's parameters and their default values (from its parameters cell,
    read without a kernel)."""
    import papermill

    path = Path(path) if path else paths.notebooks_dir() / "train.ipynb"
    found = papermill.inspect_notebook(str(path))
    defaults = {}
    for name, info in found.items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = info["default"]
    return defaults


def numeric_scraps(metric: str | Sequence[str]) -> set[str]:
    """The numbers the train notebook glues for ``metric`` (all of the metrics, when the
    metric itself is searched): ``{val,test}_{loss,accuracy,<metric>}`` and train_seconds."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    common = None
    for m in metrics:
        names = {f"{part}_{k}" for part in ("val", "test") for k in ("loss", "accuracy", m)}
        common = names if common is None else common & names
    return (common or set()) | {"train_seconds"}


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The mapping in the tune config file (``conf/hptuning.yml``); {} for None/""."""
    if not path:
        return {}
    resolved = paths.resolve(path)
    if not resolved.is_file():
        raise TuningConfigError("config_file", f"{path} does not exist")
    try:
        data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TuningConfigError("config_file", f"{path} does not parse: {exc}") from None
    if not isinstance(data, Mapping):
        raise TuningConfigError("config_file", f"{path} does not hold a mapping")
    unknown = sorted(set(data) - set(CONFIG_KEYS) - {"hptuning_tag"})
    if unknown:
        raise TuningConfigError(
            unknown[0], f"unknown key in {path}; known keys: {', '.join(CONFIG_KEYS)}"
        )
    return dict(data)


def load_config(
    params: Mapping[str, Any],
    config_file: str | Path | None = DEFAULT_CONFIG_FILE,
    train_notebook: str | Path | None = None,
) -> TuneConfig:
    """The tune notebook's parameters (a None value: from ``config_file``, else DEFAULTS),
    checked against each other and against the train notebook's parameters.

    ``params`` may also hold ``hptuning_tag``, ``setup_mlflow`` and the ``mlflow_*``
    settings that the trials inherit (``train_params`` can override those). Raises
    TuningConfigError naming the first bad key; nothing has run yet.
    """
    from lib.secrets import check_parameter_names

    from_file = read_config_file(config_file)
    raw: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = params.get(key)
        if value is None and key in from_file:
            value = from_file[key]
        elif value is None and key != "storage":
            value = DEFAULTS[key]
        raw[key] = value
    if params.get("storage") is None and "storage" in from_file:
        raw["storage"] = from_file["storage"]
    # train_params: the file's, then the parameter's, key by key.
    raw["train_params"] = {
        **_as_mapping("train_params", from_file.get("train_params")),
        **_as_mapping("train_params", params.get("train_params")),
    }

    space = parse_search_space(raw["search_space"])
    directions = [str(d).lower() for d in _list("directions", raw["directions"])]
    for i, direction in enumerate(directions):
        if direction not in DIRECTIONS:
            raise TuningConfigError(
                f"directions[{i}]", f"{direction!r} is not one of {', '.join(DIRECTIONS)}"
            )
    objectives = [str(o) for o in _list("objectives", raw["objectives"])]
    if len(objectives) != len(directions):
        raise TuningConfigError(
            "objectives",
            f"{len(objectives)} objectives {objectives} but {len(directions)} directions "
            f"{directions}: give one direction per objective",
        )
    if len(set(objectives)) < len(objectives):
        raise TuningConfigError("objectives", f"{objectives} names an objective twice")
    sampler = _as_mapping("sampler", raw["sampler"])
    if not sampler.get("name"):
        raise TuningConfigError("sampler.name", "missing, e.g. {name: tpe, seed: 123}")
    make_sampler(sampler, space)  # checks its name and arguments
    study_name = str(raw["study_name"] or "").strip()
    if not study_name:
        raise TuningConfigError("study_name", "must not be empty")
    storage = raw["storage"]
    if isinstance(storage, str) and storage.strip().lower() in ("", MEMORY_STORAGE, "none", "null"):
        storage = None
    if storage is not None and not isinstance(storage, str):
        raise TuningConfigError("storage", f"{storage!r} is not a URL or a file path")
    n_trials = _as_int("n_trials", raw["n_trials"], 1)
    n_jobs = _as_int("n_jobs", raw["n_jobs"], 1)
    max_failures = _as_int("max_failures", raw["max_failures"], 1)
    heartbeat = _as_int("heartbeat_interval", raw["heartbeat_interval"], 1)
    grace = _as_int("grace_period", raw["grace_period"], 1)
    if grace <= heartbeat:
        raise TuningConfigError(
            "grace_period", f"{grace} s must exceed heartbeat_interval ({heartbeat} s)"
        )
    try:
        trial_html = as_bool("trial_html", raw["trial_html"])
    except ValueError as exc:
        raise TuningConfigError("trial_html", str(exc)) from None

    train_params = raw["train_params"]
    try:
        check_parameter_names(train_params)
    except ValueError as exc:
        raise TuningConfigError("train_params", str(exc)) from None
    train_defaults = train_notebook_parameters(train_notebook)
    _check_names(space, train_params, train_defaults)
    enqueue = _check_enqueue(raw["enqueue_trials"], space)

    metric = train_params.get("metric", train_defaults.get("metric", "accuracy"))
    metrics = list(space["metric"].choices) if "metric" in space else [metric]
    glued = numeric_scraps([str(m) for m in metrics])
    for i, objective in enumerate(objectives):
        if objective not in glued:
            raise TuningConfigError(
                f"objectives[{i}]",
                f"the train notebook does not glue {objective!r} (metric {metrics[0]!r}"
                f"{' and others' if len(metrics) > 1 else ''}); it glues "
                + ", ".join(sorted(glued)),
            )

    def setting(name: str) -> Any:
        return train_params.get(name, params.get(name))

    try:
        setup_mlflow = setting("setup_mlflow")
        setup_mlflow = True if setup_mlflow is None else as_bool("setup_mlflow", setup_mlflow)
    except ValueError as exc:
        raise TuningConfigError("setup_mlflow", str(exc)) from None
    tag = params.get("hptuning_tag")
    tag = from_file.get("hptuning_tag") if tag in (None, "") else tag
    return TuneConfig(
        search_space=space,
        directions=directions,
        objectives=objectives,
        sampler=sampler,
        study_name=study_name,
        storage=storage,
        n_trials=n_trials,
        n_jobs=n_jobs,
        max_failures=max_failures,
        train_params=train_params,
        enqueue_trials=enqueue,
        heartbeat_interval=heartbeat,
        grace_period=grace,
        trial_html=trial_html,
        cell_timeout=_as_int("cell_timeout", raw["cell_timeout"], 1, allow_none=True),
        kernel_max_trials=_as_int(
            "kernel_max_trials", raw["kernel_max_trials"], 1, allow_none=True
        ),
        kernel_max_rss_mib=_as_float_or_none("kernel_max_rss_mib", raw["kernel_max_rss_mib"]),
        hptuning_tag=None if tag in (None, "") else str(tag),
        setup_mlflow=setup_mlflow,
        mlflow_tracking_uri=setting("mlflow_tracking_uri"),
        mlflow_exp_name=setting("mlflow_exp_name") or train_defaults.get("mlflow_exp_name"),
        mlflow_artifact_location=setting("mlflow_artifact_location"),
        train_defaults=train_defaults,
    )


def _as_float_or_none(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise TuningConfigError(key, f"{value!r} is not a positive number")
    return float(value)


def _list(key: str, value: Any) -> list[Any]:
    try:
        items = as_list(key, value)
    except ValueError as exc:
        raise TuningConfigError(key, str(exc)) from None
    if not items:
        raise TuningConfigError(key, "must not be empty")
    return items


def _check_names(
    space: Mapping[str, SearchParam], fixed: Mapping[str, Any], defaults: Mapping[str, Any]
) -> None:
    known = ", ".join(sorted(n for n in defaults if n not in RESERVED))
    for name in fixed:
        if name in RESERVED:
            raise TuningConfigError(f"train_params.{name}", f"cannot be set: {RESERVED[name]}")
        if name not in defaults:
            raise TuningConfigError(
                f"train_params.{name}", f"not a parameter of the train notebook; known: {known}"
            )
    for name in space:
        top, _, sub = name.partition(".")
        key = f"search_space.{name}"
        if top in RESERVED:
            raise TuningConfigError(key, f"cannot be searched: {RESERVED[top]}")
        if top.startswith(_NOT_SEARCHABLE_PREFIXES):
            raise TuningConfigError(key, "MLflow settings cannot be searched (fix them instead)")
        if top not in defaults:
            raise TuningConfigError(key, f"not a parameter of the train notebook; known: {known}")
        if sub:
            base = fixed.get(top, defaults[top])
            if not isinstance(base, Mapping):
                raise TuningConfigError(
                    key, f"{top} is not a mapping parameter, so {name!r} cannot set a key in it"
                )
            if f"{top}.{sub}" in space and top in space:
                raise TuningConfigError(key, f"{top} is searched as a whole too")
        if name in fixed:
            raise TuningConfigError(
                key, f"{name} is also fixed in train_params; search it or fix it, not both"
            )
        if sub and isinstance(fixed.get(top), Mapping) and sub in fixed[top]:
            raise TuningConfigError(
                key, f"{name} is also fixed in train_params.{top}; search it or fix it, not both"
            )


def _check_enqueue(value: Any, space: Mapping[str, SearchParam]) -> list[dict[str, Any]]:
    items = as_list("enqueue_trials", value) if value not in (None, "", []) else []
    out = []
    for i, item in enumerate(items):
        key = f"enqueue_trials[{i}]"
        if not isinstance(item, Mapping):
            raise TuningConfigError(key, f"{item!r} is not a mapping of searched names")
        for name, v in item.items():
            if name not in space:
                raise TuningConfigError(f"{key}.{name}", "not a name of the search space")
            if not space[name].contains(v):
                raise TuningConfigError(
                    f"{key}.{name}", f"{v!r} is outside {_spec_text(space[name])}"
                )
        out.append(dict(item))
    return out


# ---------------------------------------------------------------------------------------
# Samplers and storage
# ---------------------------------------------------------------------------------------


def _sampler_classes() -> dict[str, type]:
    import optuna.samplers as s

    return {
        "tpe": s.TPESampler,
        "random": s.RandomSampler,
        "nsgaii": s.NSGAIISampler,
        "nsgaiii": s.NSGAIIISampler,
        "qmc": s.QMCSampler,
        "grid": s.GridSampler,
        "bruteforce": s.BruteForceSampler,
    }


def make_sampler(spec: Mapping[str, Any], space: Mapping[str, SearchParam]):
    """An Optuna sampler from ``{name: tpe, seed: 123, ...}``; other keys are its arguments."""
    import inspect

    classes = _sampler_classes()
    name = str(spec.get("name", "")).lower()
    if name not in classes:
        raise TuningConfigError(
            "sampler.name", f"unknown sampler {name!r}; known: {', '.join(classes)}"
        )
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    cls = classes[name]
    accepted = set(inspect.signature(cls).parameters)
    for key in kwargs:
        if key not in accepted or key == "search_space":
            raise TuningConfigError(
                f"sampler.{key}",
                f"not an argument of {cls.__name__}; see the Optuna documentation",
            )
    if name == "grid":
        grid = {n: p.grid() for n, p in space.items()}
        loose = [n for n, g in grid.items() if g is None]
        if loose:
            raise TuningConfigError(
                f"search_space.{loose[0]}", "the grid sampler needs a step or choices"
            )
        kwargs["search_space"] = grid
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TuningConfigError("sampler", f"{cls.__name__} refuses {kwargs}: {exc}") from None


def _public_storage(storage: str | None) -> str | None:
    if storage is None or "://" not in storage:
        return storage
    from lib.tracking import public_uri

    return public_uri(storage)


def _heartbeat_journal_storage_class():
    """JournalStorage has no heartbeat in Optuna 5; this adds one, kept as a trial system
    attribute (wall-clock time), so that fail_stale_trials works on journal files too."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        def __init__(self, backend, heartbeat_interval, grace_period, stale_callback) -> None:
            super().__init__(backend)
            self._heartbeat_interval = heartbeat_interval
            self._grace_period = grace_period
            self._stale_callback = stale_callback

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self.set_trial_system_attr(trial_id, "heartbeat", time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                pass

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for trial in self.get_all_trials(
                study_id, deepcopy=False, states=(TrialState.RUNNING,)
            ):
                beat = trial.system_attrs.get("heartbeat")
                if beat is None and trial.datetime_start is not None:
                    beat = trial.datetime_start.timestamp()
                if beat is not None and now - beat > self._grace_period:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._heartbeat_interval

        def get_heartbeat_stale_trial_callback(self):
            return self._stale_callback

    return HeartbeatJournalStorage


def open_storage(storage: str | None, heartbeat_interval: int = 30, grace_period: int = 120):
    """The Optuna storage: None (in memory), an RDB URL (``sqlite:///...``,
    ``postgresql://...``) or a journal file path, with heartbeats so that trials left
    RUNNING by a dead process are failed and retried. Checks that it can be used:
    TuningConfigError("storage: ...") otherwise."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if storage is None:
        return optuna.storages.InMemoryStorage()
    shown = _public_storage(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process died is failed, then run again with the same parameters.
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
        if "://" not in storage:
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = paths.resolve(storage)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
                cls = _heartbeat_journal_storage_class()
                return cls(backend, heartbeat_interval, grace_period, retry)
            except Exception as exc:
                raise TuningConfigError(
                    "storage", f"cannot open the journal file {path}: {exc}"
                ) from None
        url, engine_kwargs = storage, {}
        if storage.startswith("sqlite:///"):
            db = Path(storage.removeprefix("sqlite:///"))
            if str(db) != ":memory:":
                db = paths.resolve(db)  # relative to the project root, like other paths
                try:
                    db.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise TuningConfigError(
                        "storage", f"cannot create {db.parent}: {exc}"
                    ) from None
                url = f"sqlite:///{db}"
            # Several processes and threads write: wait for the lock instead of failing.
            engine_kwargs = {"connect_args": {"timeout": 60}}
        elif storage.startswith(("postgresql", "mysql")):
            engine_kwargs = {"connect_args": {"connect_timeout": 15}}
        try:
            for attempt in range(5):
                try:
                    return RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=retry,
                    )
                except Exception as exc:
                    # Two processes creating the tables of a new database at once: one
                    # loses the race; the tables exist by the next try.
                    text = f"{type(exc).__name__} {exc}"
                    racing = any(w in text for w in ("IntegrityError", "already exists", "locked"))
                    if not racing or attempt == 4:
                        raise
                    time.sleep(0.5 * (attempt + 1))
        except ModuleNotFoundError as exc:
            raise TuningConfigError(
                "storage", f"{shown}: the database driver is not installed ({exc.name})"
            ) from None
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TuningConfigError(
                "storage", f"cannot use the Optuna storage {shown}: {first}"
            ) from None


@dataclass
class StudyHandle:
    """An open study and what this tune process knows about it."""

    study: optuna.Study
    created: bool  # False: an existing study was resumed or joined
    hptuning_tag: str


def open_study(config: TuneConfig) -> StudyHandle:
    """Create the study, or load it when it exists in the storage (resume, or another tune
    process on the same study). Checks that an existing study has the same directions and
    objectives and a compatible search space."""
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
        _check_existing(study, config)
    tag = (
        config.hptuning_tag
        or os.environ.get("MLFLOW_HPTUNING_TAG")
        or study.user_attrs.get(_STUDY_ATTR_TAG)
        or str(int(time.time()))
    )
    if created:
        study.set_user_attr(_STUDY_ATTR_OBJECTIVES, config.objectives)
        study.set_user_attr(_STUDY_ATTR_TAG, tag)
        for params in config.enqueue_trials:
            study.enqueue_trial(params, user_attrs={"enqueued": True})
    log.info(
        "study %r %s in %s: %d trials so far; hptuning_tag %s",
        config.study_name,
        "created" if created else "loaded",
        _public_storage(config.storage) or "memory",
        len(study.trials),
        tag,
    )
    return StudyHandle(study=study, created=created, hptuning_tag=tag)


def _check_existing(study: optuna.Study, config: TuneConfig) -> None:
    from optuna.distributions import check_distribution_compatibility

    directions = [d.name.lower() for d in study.directions]
    if directions != config.directions:
        raise TuningConfigError(
            "directions",
            f"{config.directions} differ from those of the stored study "
            f"{config.study_name!r} ({directions}); use another study_name",
        )
    stored = study.user_attrs.get(_STUDY_ATTR_OBJECTIVES)
    if stored is not None and list(stored) != config.objectives:
        raise TuningConfigError(
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
                    raise TuningConfigError(
                        f"search_space.{name}",
                        f"incompatible with trial {trial.number} of the stored study: {exc}",
                    ) from None


# ---------------------------------------------------------------------------------------
# Trial parameters
# ---------------------------------------------------------------------------------------


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
    values (dotted names set a key of a mapping parameter), and what the tune sets."""
    params: dict[str, Any] = {k: _copy(v) for k, v in config.train_params.items()}
    for name, value in sampled.items():
        top, _, sub = name.partition(".")
        if sub:
            base = params.get(top, config.train_defaults.get(top)) or {}
            params[top] = {**base, sub: value}
        else:
            params[name] = value
    tags = dict(_as_mapping("train_params.mlflow_tags", params.get("mlflow_tags")))
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
    )
    return params


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


# ---------------------------------------------------------------------------------------
# The trial loop
# ---------------------------------------------------------------------------------------


@dataclass
class TrialOutcome:
    """What running one trial gave: the train notebook's scraps, or an error."""

    scraps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)


# (trial number, sampled values) -> outcome; must not raise for a failing trial.
TrialFunction = Callable[[int, dict[str, Any]], TrialOutcome]


@dataclass
class StudyRun:
    """What one call of run_study did."""

    ran: list[int] = field(default_factory=list)  # trial numbers this process ran
    failed: list[int] = field(default_factory=list)
    surplus: list[int] = field(default_factory=list)
    stopped: str | None = None  # why the study stopped early, else None
    seconds: float = 0.0

    def raise_if_stopped(self) -> None:
        if self.stopped:
            raise TuningError(self.stopped)


def objective_values(
    scraps: Mapping[str, Any], objectives: Sequence[str]
) -> tuple[list[float] | None, str | None]:
    """The objectives' values from a trial's scraps, or an error naming what is missing."""
    values = []
    for name in objectives:
        if name not in scraps:
            return None, f"the train notebook did not glue the objective {name!r}"
        value = scraps[name]
        if not _is_number(value):
            return None, f"objective {name!r} = {value!r} is not a finite number"
        values.append(float(value))
    return values, None


class _Heartbeat:
    """Records a trial's heartbeat every interval while it runs (RDB and journal storages)."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        from optuna.storages._heartbeat import BaseHeartbeat

        storage = study._storage
        self._storage = storage if isinstance(storage, BaseHeartbeat) else None
        self._interval = self._storage.get_heartbeat_interval() if self._storage else None
        self._trial_id = trial._trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._storage is not None and self._interval:
            self.beat()  # at once: a trial without any heartbeat is never found stale
            self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
            self._thread.start()
        return self

    def beat(self) -> None:
        if self._storage is None or not self._interval:
            return
        try:
            self._storage.record_heartbeat(self._trial_id)
        except Exception as exc:  # a storage hiccup must not end the trial
            log.warning("heartbeat of trial id %s failed: %s", self._trial_id, exc)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _fail_stale(study: optuna.Study) -> None:
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_study(
    study: optuna.Study,
    config: TuneConfig,
    run_trial: TrialFunction,
    *,
    poll_interval: float = 2.0,
    on_interrupt: Callable[[], None] | None = None,
) -> StudyRun:
    """Run trials until the study holds ``config.n_trials`` COMPLETE trials.

    ``config.n_jobs`` worker threads each ask for a trial as soon as their previous one
    ends. Exactly ``n_trials``, across threads and processes: a newly asked trial runs only
    if the completed trials plus the RUNNING/WAITING trials numbered below it leave room;
    otherwise it is told PRUNED with the user attribute ``surplus`` (a race between
    processes, rare and cheap). While the remaining trials run elsewhere, workers wait (and
    fail trials whose heartbeat stopped, so that they are retried). A failing trial is told
    FAIL with its error; after ``config.max_failures`` of them (in this process) the study
    stops: ``StudyRun.stopped`` says why.
    """
    import warnings

    from optuna.trial import TrialState

    result = StudyRun()
    stop = threading.Event()
    ask_lock = threading.Lock()  # this process's workers ask one at a time
    started = time.perf_counter()
    n = config.n_trials

    def counts(below: int | None = None) -> tuple[int, int, bool]:
        complete = running = 0
        waiting = False
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                complete += 1
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                if below is None and t.state == TrialState.WAITING:
                    waiting = True
                elif below is None or t.number < below:
                    running += 1
        return complete, running, waiting

    def next_trial():
        """A trial to run, None when the study is complete, or "wait"."""
        with ask_lock:
            _fail_stale(study)
            complete, running, _ = counts()
            if complete >= n:
                return None
            if complete + running >= n:
                return "wait"
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize: this loop
                # records them itself (_Heartbeat) and fails stale trials (_fail_stale).
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = study.ask()
            _Heartbeat(study, trial).beat()  # the first one, as soon as the trial exists
            complete, lower, _ = counts(below=trial.number)
            if complete + lower >= n:
                trial.set_user_attr(SURPLUS_ATTR, True)
                study.tell(trial, state=TrialState.PRUNED)
                result.surplus.append(trial.number)
                log.info("trial %d not needed (another process took its place)", trial.number)
                return "wait"
            return trial

    def worker(index: int) -> None:
        try:
            while not stop.is_set():
                trial = next_trial()
                if trial is None:
                    return
                if trial == "wait":
                    stop.wait(poll_interval)
                    continue
                _run_one(study, config, trial, run_trial, result, stop, index)
        except Exception as exc:  # the storage failed: stop, and say why
            log.exception("tuning worker %d stopped", index)
            if not result.stopped:
                result.stopped = f"a tuning worker stopped: {type(exc).__name__}: {exc}"
            stop.set()

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"tune-worker-{i}", daemon=True)
        for i in range(config.n_jobs)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        result.stopped = "interrupted"
        if on_interrupt is not None:
            on_interrupt()
        for thread in threads:
            thread.join()
        raise
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _run_one(study, config, trial, run_trial, result, stop, worker_index) -> None:
    import optuna
    from optuna.trial import TrialState

    sampled = sample(trial, config.search_space)
    retried = study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    log.info(
        "trial %d starts%s: %s",
        trial.number,
        f" (retry of trial {retried})" if retried is not None else "",
        json.dumps(sampled),
    )
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}:{worker_index}")
    started = time.perf_counter()
    with _Heartbeat(study, trial):
        try:
            outcome = run_trial(trial.number, sampled)
        except Exception as exc:  # a bug in the trial function: the trial fails, not the loop
            log.exception("trial %d raised", trial.number)
            outcome = TrialOutcome(error=f"{type(exc).__name__}: {exc}")
        values, error = (None, outcome.error)
        if error is None:
            values, error = objective_values(outcome.scraps, config.objectives)
        seconds = time.perf_counter() - started
        try:
            for key, value in {**outcome.user_attrs, "seconds": round(seconds, 2)}.items():
                if value is not None:
                    trial.set_user_attr(key, value)
            if error is None:
                trial.set_user_attr("objectives", dict(zip(config.objectives, values, strict=True)))
                study.tell(trial, values)
            else:
                trial.set_user_attr("error", error[:2000])
                study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                "trial %d was failed meanwhile (its heartbeat was late); its result is dropped",
                trial.number,
            )
            return
    result.ran.append(trial.number)
    if error is None:
        shown = ", ".join(f"{o}={v:.4g}" for o, v in zip(config.objectives, values, strict=True))
        log.info("trial %d finished in %.1f s: %s", trial.number, seconds, shown)
        return
    result.failed.append(trial.number)
    log.error("trial %d failed after %.1f s: %s", trial.number, seconds, error)
    if len(result.failed) >= config.max_failures and not stop.is_set():
        result.stopped = (
            f"{len(result.failed)} trials failed (max_failures={config.max_failures}), so "
            f"the study stopped; the last, trial {trial.number}: {error}"
        )
        stop.set()


# ---------------------------------------------------------------------------------------
# Trials as executed train notebooks
# ---------------------------------------------------------------------------------------

# Run in each trial kernel before its first trial: the train notebook's imports (TensorFlow
# above all, and the MLflow store's modules) and TensorFlow's runtime. A failed import is
# left for the trial itself to report. The store itself is not opened: a new local database
# is created by the tune notebook (the parent run); a kernel opening it at the same moment
# would race its schema migrations, and one killed mid-way leaves the database unusable.
_WARMUP = """\
import importlib, time
_started = time.perf_counter()
_failed = []
for _name in {modules!r}:
    try:
        importlib.import_module(_name)
    except Exception as _exc:
        _failed.append(f"{{_name}}: {{type(_exc).__name__}}: {{_exc}}")
try:
    import tensorflow as _tf
    _tf.constant(1.0) + 1.0
except Exception as _exc:
    _failed.append(f"tensorflow runtime: {{_exc}}")
print(f"warm in {{time.perf_counter() - _started:.1f}} s", *_failed, sep="\\n")
"""
WARMUP_MODULES = (
    "pandas",
    "scrapbook",
    "matplotlib.pyplot",
    "mlflow",
    "mlflow.keras",
    "mlflow.models",
    "tensorflow",
    "keras",
    "lib.datasets",
    "lib.evaluation",
    "lib.model_io",
    "lib.models",
    "lib.training",
    "lib.tracking",
    "lib.logs",
    "lib.train_checks",
)


def warmup_code(tracking_uri: str | None) -> str:
    """The code a trial kernel runs once, before its first trial: the imports, with those
    of the MLflow store at ``tracking_uri`` (None: no tracking)."""
    from lib.tracking import store_modules

    return _WARMUP.format(modules=list(WARMUP_MODULES) + store_modules(tracking_uri))


def kernel_env(n_jobs: int) -> dict[str, str]:
    """The trial kernels' environment: this one, and with several kernels on one machine,
    GPU memory taken as needed (TensorFlow takes all of it by default) unless set."""
    from runner.kernel_pool import HANDOFF_ENV

    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    if n_jobs > 1:
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


def start_kernel_pool(
    n_jobs: int,
    tracking_uri: str | None,
    max_uses: int | None = None,
    max_rss_mib: float | None = None,
):
    """A KernelPool of ``n_jobs`` trial kernels, starting and warming up in the background;
    kernels the runner started ahead for this process ($RUNNER_KERNEL_HANDOFF, see
    :func:`prestart_trial_kernels`) are adopted first."""
    from runner.kernel_pool import KernelPool, take_handoffs

    return KernelPool(
        n_jobs,
        warmup_code=warmup_code(tracking_uri),
        kernel_name=KERNEL_NAME,
        cwd=paths.project_root(),
        env=kernel_env(n_jobs),
        max_uses=max_uses,
        max_rss_mib=max_rss_mib,
        adopt=take_handoffs(),
    ).start()


def _tracking_uri(params: Mapping[str, Any]) -> str | None:
    """The MLflow store the trials will use (None when tracking is off)."""
    if params.get("setup_mlflow") in (False, "false", "False"):
        return None
    from lib.tracking import resolve_tracking_uri

    return resolve_tracking_uri(params.get("mlflow_tracking_uri"))


def requested_n_jobs(params: Mapping[str, Any], config_file: str | Path | None) -> int:
    """``n_jobs`` from the parameters, else the config file, else 1 (bad values are
    :func:`load_config`'s to report)."""
    try:
        return _as_int("n_jobs", params.get("n_jobs") or _file_value(config_file, "n_jobs"), 1)
    except (TuningConfigError, ValueError):
        return 1


def prestart_trial_kernels(params: Mapping[str, Any]):
    """For the runner, before it starts the tune notebook: a hand-off-only KernelPool of the
    trial kernels that the notebook's :func:`prepare` will adopt, already importing
    TensorFlow while papermill and the tune kernel start. Shut it down after the notebook
    (whatever the notebook did not adopt or end then ends)."""
    from runner.kernel_pool import KernelPool

    n_jobs = requested_n_jobs(params, params.get("config_file", DEFAULT_CONFIG_FILE))
    return KernelPool(
        n_jobs,
        # The notebook's pool runs the same warm-up again when it adopts them: instant then.
        warmup_code=warmup_code(_tracking_uri(params)),
        kernel_name=KERNEL_NAME,
        cwd=paths.project_root(),
        env=kernel_env(n_jobs),
        handoff_only=True,
    ).start()


def prepare(params: Mapping[str, Any], config_file: str | Path | None = DEFAULT_CONFIG_FILE):
    """``(config, pool)``: the trial kernels start first, in the background (importing
    TensorFlow takes a while), then the configuration is read and checked
    (:func:`load_config`); a bad configuration shuts the kernels down and raises."""
    n_jobs = requested_n_jobs(params, config_file)
    pool = start_kernel_pool(n_jobs, _tracking_uri(params))
    try:
        config = load_config(params, config_file)
        pool.max_uses = config.kernel_max_trials
        pool.max_rss_mib = config.kernel_max_rss_mib or default_kernel_rss_mib(config.n_jobs)
        if config.n_jobs > pool.size:
            pool.grow(config.n_jobs - pool.size)
    except BaseException:
        pool.shutdown()
        raise
    return config, pool


def memory_limit_mib() -> float:
    """The memory this process may use: the machine's, or its container's limit (cgroup v2
    or v1) when lower."""
    import psutil

    limit = psutil.virtual_memory().total / 2**20
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text) / 2**20)
    return limit


def default_kernel_rss_mib(n_jobs: int) -> float:
    """A trial kernel is replaced once it holds more than this after a trial: 40 % of the
    memory limit, shared by the ``n_jobs`` kernels. A kernel's memory grows with the trials
    it ran (about 100 MiB a trial for the nbngram model on the full data, in a notebook or
    not), and the next trial needs room above it."""
    return round(0.4 * memory_limit_mib() / n_jobs)


def _file_value(config_file: str | Path | None, key: str) -> Any:
    try:
        return read_config_file(config_file).get(key, DEFAULTS[key])
    except TuningConfigError:
        return DEFAULTS[key]


_PREFLIGHT = """\
import json as _json
from lib.train_checks import check_train_params as _check
for _case in _json.loads({cases!r}):
    try:
        _check(_case["params"])
    except Exception as _exc:
        print(_json.dumps({{"varied": _case["varied"], "name": getattr(_exc, "name", None),
                           "error": f"{{type(_exc).__name__}}: {{_exc}}"}}))
        break
"""


def preflight_cases(config: TuneConfig, trial_dir: Path) -> list[dict[str, Any]]:
    """Parameter sets that try every searched parameter's extreme values (or choices),
    one parameter at a time, the others at their first value."""
    base = {name: p.edge_values()[0] for name, p in config.search_space.items()}
    cases = [{"varied": None, "sampled": base}]
    for name, param in config.search_space.items():
        for value in param.edge_values()[1:]:
            cases.append({"varied": name, "sampled": {**base, name: value}})
    out = []
    for case in cases:
        params = trial_params(
            config, 0, case["sampled"], trial_dir=trial_dir, parent_run_id=None, hptuning_tag=None
        )
        # The whole parameter set, as the train notebook's first cell sees it.
        keep = {k: v for k, v in {**config.train_defaults, **params}.items()}
        out.append({"varied": case["varied"], "sampled": case["sampled"], "params": keep})
    return out


def preflight(config: TuneConfig, pool, trial_dir: Path) -> None:
    """Check, in a warm trial kernel and before any trial, that the train notebook accepts
    the fixed parameters and every searched parameter's range (its own parameter checks:
    choices, bounds, the data folder). TuningConfigError names the key otherwise."""
    from runner.kernel_pool import KernelCodeError

    cases = preflight_cases(config, trial_dir)
    kernel = pool.acquire()
    try:
        output = pool.warm(kernel, _PREFLIGHT.format(cases=json.dumps(cases, default=str)))
    except KernelCodeError as exc:
        pool.release(kernel, reuse=False)
        raise TuningConfigError(
            "train_params", f"cannot check the train parameters in a kernel: {exc}"
        ) from None
    pool.release(kernel, reuse=True)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if not lines:
        return
    found = json.loads(lines[-1])
    varied, name = found["varied"], found["name"]
    if varied is not None:
        value = next(c["sampled"][varied] for c in cases if c["varied"] == varied)
        key = f"search_space.{varied}"
        raise TuningConfigError(key, f"the train notebook refuses {value!r}: {found['error']}")
    searched = {n.partition(".")[0]: n for n in config.search_space}
    if name in searched:
        key = f"search_space.{searched[name]}"
    elif name in config.train_params:
        key = f"train_params.{name}"
    else:
        key = "train_params" if name is None else f"train_params.{name} (the train default)"
    raise TuningConfigError(key, f"the train notebook refuses it: {found['error']}")


class NotebookTrials:
    """Runs one trial as an execution of the train notebook, in a warm kernel of ``pool``,
    into ``trials_dir/trial-NNN/`` (with the runner's masking, scraps and MLflow hooks)."""

    def __init__(
        self,
        config: TuneConfig,
        pool,
        trials_dir: Path,
        parent_run_id: str | None,
        hptuning_tag: str | None,
        stage=None,
    ) -> None:
        from runner.stages import get_stage

        self.config = config
        self.pool = pool
        self.trials_dir = Path(trials_dir)
        self.parent_run_id = parent_run_id
        self.hptuning_tag = hptuning_tag
        self.stage = stage or get_stage("train")

    def trial_dir(self, number: int) -> Path:
        return self.trials_dir / f"trial-{number:03d}"

    def __call__(self, number: int, sampled: dict[str, Any]) -> TrialOutcome:
        from runner.execute import execute_stage
        from runner.hooks import default_hooks

        trial_dir = self.trial_dir(number)
        params = trial_params(
            self.config,
            number,
            sampled,
            trial_dir=trial_dir,
            parent_run_id=self.parent_run_id,
            hptuning_tag=self.hptuning_tag,
        )
        kernel = self.pool.acquire()
        ok = False
        try:
            execution = execute_stage(
                self.stage,
                params,
                run_dir=trial_dir,
                render=self.config.trial_html,
                hooks=default_hooks(),
                execution_timeout=self.config.cell_timeout,
                km=kernel.km,
            )
            ok = execution.ok
        finally:
            self.pool.release(kernel, reuse=ok)
        scraps = execution.scraps
        run_id = scraps.get("mlflow_run_id")
        if not execution.ok and not run_id and self.config.setup_mlflow:
            run_id = self._record_failed_run(number, execution)
        return TrialOutcome(
            scraps=scraps,
            error=execution.error,
            user_attrs={
                "notebook": str(execution.output_path),
                "mlflow_run_id": run_id,
                "model_uri": scraps.get("model_uri"),
                "hptuning_tag": self.hptuning_tag,
            },
        )

    def _record_failed_run(self, number: int, execution) -> str | None:
        """A FAILED child run holding the partial notebook, for a trial whose notebook
        failed before it started its own run."""
        try:
            import mlflow

            from lib.tracking import log_notebook, resolve_tracking_uri, run_tags

            uri = resolve_tracking_uri(self.config.mlflow_tracking_uri)
            client = mlflow.MlflowClient(uri)
            experiment = client.get_experiment_by_name(self.config.mlflow_exp_name)
            if experiment is None:
                return None
            tags = run_tags(
                self.hptuning_tag,
                {"study_name": self.config.study_name, "trial_number": str(number)},
            )
            if self.parent_run_id:
                tags["mlflow.parentRunId"] = self.parent_run_id
            run = client.create_run(experiment.experiment_id, run_name=f"trial-{number}", tags=tags)
            files = [execution.output_path] + ([execution.html_path] if execution.html_path else [])
            log_notebook(uri, run.info.run_id, files, failed=True, error=execution.error)
            return run.info.run_id
        except Exception as exc:
            log.warning("could not record failed trial %d in MLflow: %s", number, exc)
            return None


def default_trials_dir() -> Path:
    """``<run folder>/trials`` when the runner executes the tune notebook
    ($RUNNER_RUN_DIR), else a new ``runs/<UTC time>-tune/trials``."""
    run_dir = os.environ.get(paths.RUN_DIR_ENV)
    if run_dir:
        return Path(run_dir) / "trials"
    return paths.new_run_dir("tune") / "trials"


SUMMARY_MODULES = ("pandas", "optuna.importance", "matplotlib.pyplot")


def run_trials(
    config: TuneConfig,
    handle: StudyHandle,
    pool,
    trials_dir: Path,
    parent_run_id: str | None,
    *,
    check: bool = True,
    stage=None,
) -> StudyRun:
    """The tune notebook's main step: check the train parameters in a warm kernel
    (``preflight``), then run the study with train-notebook trials; the pool is shut down
    at the end, whatever happens."""
    # The summary's heavy imports (optuna.importance alone takes seconds) load while the
    # trials run, not after them.
    import_in_background(SUMMARY_MODULES, "summary-imports")
    try:
        trials_dir = Path(trials_dir)
        trials_dir.mkdir(parents=True, exist_ok=True)
        if check:
            preflight(config, pool, trials_dir / "trial-check")
        trials = NotebookTrials(
            config, pool, trials_dir, parent_run_id, handle.hptuning_tag, stage=stage
        )
        if config.n_jobs > 1 and Path.cwd() != paths.project_root():
            # papermill chdirs to the project root and back around each execution; with
            # several at once, "back" must be the same folder.
            os.chdir(paths.project_root())
        return run_study(handle.study, config, trials, on_interrupt=pool.interrupt)
    finally:
        pool.shutdown()


# ---------------------------------------------------------------------------------------
# The MLflow parent run
# ---------------------------------------------------------------------------------------


def start_parent_run(config: TuneConfig, handle: StudyHandle, wait_s: float = 30.0) -> str | None:
    """The study's parent MLflow run: created by the process that created the study (its
    id is kept in the study), found again by a process that resumes or joins it. None when
    MLflow is off. Raises TrackingError if the store cannot be used."""
    if not config.setup_mlflow:
        return None
    import mlflow

    from lib import tracking

    uri = tracking.resolve_tracking_uri(config.mlflow_tracking_uri)
    # Also opens a local store, under a lock: tune processes that create one new database
    # at the same moment would race MLflow's schema migrations.
    tracking.check_store(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    study = handle.study
    run_id = study.user_attrs.get(_STUDY_ATTR_PARENT)
    if run_id is None and not handle.created:
        # The creator is about to record it (joined at the same moment): wait a little.
        deadline = time.monotonic() + wait_s
        while run_id is None and time.monotonic() < deadline:
            time.sleep(1.0)
            run_id = study.user_attrs.get(_STUDY_ATTR_PARENT)
    if run_id is not None:
        try:
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            log.info("MLflow parent run %s (resumed)", run_id)
            return run_id
        except mlflow.exceptions.MlflowException:
            log.warning("the study's parent run %s is not in %s; starting a new one", run_id, uri)
    try:
        experiment_id = tracking.setup_experiment(
            config.mlflow_exp_name, config.mlflow_artifact_location
        )
        tags = tracking.run_tags(
            handle.hptuning_tag,
            {"study_name": config.study_name, "optuna_storage": _public_storage(config.storage)},
        )
        run = client.create_run(experiment_id, run_name=f"study-{config.study_name}", tags=tags)
    except mlflow.exceptions.MlflowException as exc:
        raise tracking.TrackingError(
            f"MLflow at {tracking.public_uri(uri)} failed: {exc.message}"
        ) from None
    run_id = run.info.run_id
    study.set_user_attr(_STUDY_ATTR_PARENT, run_id)
    summary = config.summary()
    client.log_batch(
        run_id,
        params=[
            mlflow.entities.Param(k, v)
            for k, v in tracking.loggable_params(
                {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in summary.items()}
            ).items()
        ],
    )
    log.info("MLflow parent run %s", run_id)
    return run_id


def exit_quickly() -> None:
    """Freeze the garbage collector's view of every object that exists now: a kernel (or
    process) about to exit then skips its last full collections, ~1.8 s for the tune
    notebook's kernel. Call it last; objects alive now are never collected afterwards."""
    import gc

    gc.freeze()


def finish_parent_run(
    config: TuneConfig,
    run_id: str | None,
    study: optuna.Study,
    files: Sequence[Path],
    failed: bool,
) -> None:
    """Log the study's summary files and counts to the parent run and end it."""
    if not run_id:
        return
    import mlflow
    from optuna.trial import TrialState

    from lib.tracking import resolve_tracking_uri

    client = mlflow.MlflowClient(resolve_tracking_uri(config.mlflow_tracking_uri))
    for path in files:
        if path and Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path="study")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    metrics = {
        "n_complete": states.count(TrialState.COMPLETE),
        "n_failed": states.count(TrialState.FAIL),
    }
    if len(study.directions) == 1 and metrics["n_complete"]:
        metrics[f"best_{config.objectives[0]}"] = study.best_value
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------


def trials_table(study: optuna.Study, objectives: Sequence[str]) -> pd.DataFrame:
    """One row per trial: state, objective values, parameters, time, error, MLflow run."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if t.user_attrs.get(SURPLUS_ATTR):
            row["state"] = "PRUNED (surplus)"
        values = t.values or [None] * len(objectives)
        row.update(dict(zip(objectives, values, strict=False)))
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row["seconds"] = t.user_attrs.get("seconds")
        row["retry_of"] = t.system_attrs.get("failed_trial")
        row["error"] = t.user_attrs.get("error")
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id")
        row["model_uri"] = t.user_attrs.get("model_uri")
        row["notebook"] = t.user_attrs.get("notebook")
        rows.append(row)
    return pd.DataFrame(rows).set_index("number") if rows else pd.DataFrame()


def best_trials(study: optuna.Study, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """The best trial (one objective) or the Pareto-optimal trials (several), as plain
    dicts: number, params, values by objective, model URI and MLflow run."""
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return [
        {
            "number": t.number,
            "params": t.params,
            "values": dict(zip(objectives, t.values, strict=True)),
            "model_uri": t.user_attrs.get("model_uri"),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
        }
        for t in sorted(trials, key=lambda t: t.number)
    ]


def plot_study(study: optuna.Study, objectives: Sequence[str]):
    """The Pareto front (two objectives; best trials highlighted) or the optimisation
    history (one objective; best so far as a line). None for other counts."""
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(objectives) > 2 or not complete:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if len(objectives) == 2:
        best = {t.number for t in study.best_trials}
        for group, style in ((False, {"c": "0.6"}), (True, {"c": "tab:red"})):
            pts = [t for t in complete if (t.number in best) == group]
            ax.scatter(
                [t.values[0] for t in pts],
                [t.values[1] for t in pts],
                label="Pareto front" if group else "other trials",
                **style,
            )
            for t in pts:
                ax.annotate(str(t.number), (t.values[0], t.values[1]), fontsize=8)
        ax.set_xlabel(f"{objectives[0]} ({study.directions[0].name.lower()})")
        ax.set_ylabel(f"{objectives[1]} ({study.directions[1].name.lower()})")
        ax.set_title("Pareto front")
    else:
        numbers = [t.number for t in complete]
        values = [t.values[0] for t in complete]
        pick = min if study.direction.name == "MINIMIZE" else max
        best_so_far = [pick(values[: i + 1]) for i in range(len(values))]
        ax.scatter(numbers, values, label="trial")
        ax.plot(numbers, best_so_far, c="tab:red", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(objectives[0])
        ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def param_importances(study: optuna.Study, objectives: Sequence[str]) -> pd.DataFrame:
    """fANOVA importance of each parameter for each objective (columns); empty when there
    are too few completed trials or nothing varied."""
    import warnings

    import optuna
    import pandas as pd

    columns = {}
    for i, name in enumerate(objectives):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                columns[name] = optuna.importance.get_param_importances(
                    study, target=lambda t, i=i: t.values[i]
                )
        except (RuntimeError, ValueError) as exc:
            log.info("no parameter importances for %s: %s", name, exc)
    return pd.DataFrame(columns).fillna(0.0)


def plot_importances(importances: pd.DataFrame):
    """A horizontal bar chart of ``param_importances``; None when it is empty."""
    import matplotlib.pyplot as plt

    if importances.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.5 * len(importances) * len(importances.columns)))
    importances.iloc[::-1].plot.barh(ax=ax)
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title("Parameter importances")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
