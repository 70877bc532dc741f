"""The tune notebook's configuration: read, merged and checked before anything runs.

A parameter left at None takes the config file's value (``conf/hptuning.yml``), else
:data:`DEFAULTS`. Everything is checked, against each other and against the train
notebook's own parameters; the first bad key is a :class:`lib.core.errors.ParameterError`
naming it (``search_space.val_split.step: ...``). Numbers, lists and booleans are coerced
by :mod:`lib.core.params`, as for any notebook parameter (Polyaxon passes them as strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib.core import paths
from lib.core.errors import ParameterError
from lib.core.params import (
    as_bool,
    as_list,
    as_mapping,
    check_float,
    check_int,
    did_you_mean,
    yaml_problem,
)
from lib.core.secrets import check_parameter_names
from lib.tuning import pruning, registration
from lib.tuning.space import SearchParam, parse_search_space
from lib.tuning.storage import MEMORY_STORAGE, check_storage_url, make_sampler, public_storage
from lib.tuning.train_notebook import (
    check_names,
    check_objectives_glued,
    epoch_metrics,
    numeric_scraps,
    searched_metrics,
    train_notebook_parameters,
)

DEFAULT_CONFIG_FILE = "conf/hptuning.yml"
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
    "pruner": None,  # no pruning; e.g. {name: median, n_startup_trials: 3, n_warmup_steps: 1}
    "prune_on": "val_loss",  # the epoch metric reported to the pruner
    "trial_timeout_s": None,  # seconds a trial may run; None: no limit
    "select": None,  # the metric that picks the model to register; None: the first objective
    "register_model": None,  # None: register the best trial's model when MLflow is on
    "registered_model_name": "imdb-sentiment",
}
CONFIG_KEYS = tuple(DEFAULTS)
DIRECTIONS = ("minimize", "maximize")


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
    pruner: dict[str, Any] | None = None  # {name: ..., its arguments}; None: no pruning
    prune_on: str = "val_loss"
    trial_timeout_s: int | None = None
    # Where the trial kernels reach the study: ``storage``, or with storage null and a
    # pruner, the run's temporary journal file (set by open_study).
    trial_storage: str | None = None
    hptuning_tag: str | None = None  # the parameter or the file's; see open_study
    setup_mlflow: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_exp_name: str = "sentiment-classification"
    mlflow_artifact_location: str | None = None
    train_defaults: dict[str, Any] = field(default_factory=dict)
    register_model: bool = False  # register the best trial's model (lib.tuning.registration)
    registered_model_name: str | None = None
    select: str = "val_loss"  # the metric that picks the best trial, and its direction
    select_direction: str = "minimize"

    def summary(self) -> dict[str, Any]:
        """A plain view, for the notebook and the parent run's parameters."""
        return {
            "study_name": self.study_name,
            "storage": public_storage(self.storage),
            "n_trials": self.n_trials,
            "n_jobs": self.n_jobs,
            "max_failures": self.max_failures,
            "sampler": self.sampler,
            "objectives": self.objectives,
            "directions": self.directions,
            "search_space": {n: p.describe() for n, p in self.search_space.items()},
            "train_params": self.train_params,
            "pruner": self.pruner,
            "prune_on": self.prune_on if self.pruner else None,
            "mlflow": self.setup_mlflow,
            "register_model": self.registered_model_name if self.register_model else False,
            "select": f"{self.select} ({self.select_direction})",
        }


def _non_empty_list(key: str, value: Any) -> list[Any]:
    items = as_list(key, value)
    if not items:
        raise ParameterError(key, "must not be empty")
    return items


def _optional_int(key: str, value: Any) -> int | None:
    return None if value is None else check_int(key, value, 1)


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The mapping in the tune config file (``conf/hptuning.yml``); {} for None/""."""
    if not path:
        return {}
    resolved = paths.resolve(path)
    if not resolved.is_file():
        raise ParameterError("config_file", f"{path} does not exist")
    try:
        data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError("config_file", f"{path} does not parse: {yaml_problem(exc)}") from None
    if not isinstance(data, Mapping):
        raise ParameterError("config_file", f"{path} does not hold a mapping")
    unknown = sorted(set(data) - set(CONFIG_KEYS) - {"hptuning_tag"})
    if unknown:
        raise ParameterError(
            unknown[0], f"unknown key in {path}; {did_you_mean(unknown[0], CONFIG_KEYS)}"
        )
    return dict(data)


def _merge(params: Mapping[str, Any], from_file: Mapping[str, Any]) -> dict[str, Any]:
    """Each key: the parameter, else the file's value, else the default (``storage`` has no
    default: None keeps the study in memory); ``train_params`` merged key by key."""
    raw: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = params.get(key)
        if value is None and key in from_file:
            value = from_file[key]
        elif value is None and key != "storage":
            value = DEFAULTS[key]
        raw[key] = value
    raw["train_params"] = {
        **as_mapping("train_params", from_file.get("train_params")),
        **as_mapping("train_params", params.get("train_params")),
    }
    return raw


def _directions_and_objectives(raw: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    directions = [str(d).lower() for d in _non_empty_list("directions", raw["directions"])]
    for i, direction in enumerate(directions):
        if direction not in DIRECTIONS:
            raise ParameterError(
                f"directions[{i}]", f"{direction!r} is not one of {', '.join(DIRECTIONS)}"
            )
    objectives = [str(o) for o in _non_empty_list("objectives", raw["objectives"])]
    if len(objectives) != len(directions):
        raise ParameterError(
            "objectives",
            f"{len(objectives)} objectives {objectives} but {len(directions)} directions "
            f"{directions}: give one direction per objective",
        )
    if len(set(objectives)) < len(objectives):
        raise ParameterError("objectives", f"{objectives} names an objective twice")
    return directions, objectives


def _storage(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ("", MEMORY_STORAGE, "none", "null"):
        return None
    if value is not None and not isinstance(value, str):
        raise ParameterError("storage", f"{value!r} is not a URL or a file path")
    check_storage_url(value)
    return value


def _check_enqueue(value: Any, space: Mapping[str, SearchParam]) -> list[dict[str, Any]]:
    items = as_list("enqueue_trials", value) if value not in (None, "", []) else []
    for i, item in enumerate(items):
        key = f"enqueue_trials[{i}]"
        if not isinstance(item, Mapping):
            raise ParameterError(key, f"{item!r} is not a mapping of searched names")
        for name, v in item.items():
            if name not in space:
                raise ParameterError(f"{key}.{name}", "not a name of the search space")
            if not space[name].contains(v):
                raise ParameterError(f"{key}.{name}", f"{v!r} is outside {space[name].describe()}")
    return [dict(item) for item in items]


def _check_urls(params: Mapping[str, Any], from_file: Mapping[str, Any], config_file: Any) -> None:
    """Refuse a URL with a password in the parameters or the config file, nested ones too
    (``train_params.mlflow_tracking_uri``): the tune passes them on to its trials' notebooks."""
    check_parameter_names(params)
    try:
        check_parameter_names(from_file)
    except ParameterError as exc:  # named where it was written
        raise ParameterError(f"{exc.name} (in {config_file})", exc.problem) from None


def _check_secrets(train_params: Mapping[str, Any]) -> None:
    try:
        check_parameter_names(train_params)
    except ParameterError as exc:  # named as a key of train_params
        raise ParameterError("train_params", f"{exc.name}: {exc.problem}") from None


def load_config(
    params: Mapping[str, Any],
    config_file: str | Path | None = DEFAULT_CONFIG_FILE,
    train_notebook: str | Path | None = None,
) -> TuneConfig:
    """The tune notebook's parameters (a None value: from ``config_file``, else DEFAULTS),
    checked against each other and against the train notebook's parameters.

    ``params`` may also hold ``hptuning_tag``, ``setup_mlflow`` and the ``mlflow_*``
    settings that the trials inherit (``train_params`` can override those), and
    ``trials_dir`` (which must lie outside the project's notebooks folder). Raises
    ParameterError naming the first bad key; nothing has run yet.
    """
    if params.get("trials_dir"):  # where the trials' notebooks go: not among the project's
        paths.check_output_dir("trials_dir", params["trials_dir"])
    from_file = read_config_file(config_file)
    _check_urls(params, from_file, config_file)
    raw = _merge(params, from_file)
    space = parse_search_space(as_mapping("search_space", raw["search_space"]))
    directions, objectives = _directions_and_objectives(raw)
    sampler = as_mapping("sampler", raw["sampler"])
    if not sampler.get("name"):
        raise ParameterError("sampler.name", "missing, e.g. {name: tpe, seed: 123}")
    make_sampler(sampler, space)  # checks its name and arguments
    study_name = str(raw["study_name"] or "").strip()
    if not study_name:
        raise ParameterError("study_name", "must not be empty")
    storage = _storage(raw["storage"])
    counts = {
        key: check_int(key, raw[key], 1)
        for key in ("n_trials", "n_jobs", "max_failures", "heartbeat_interval", "grace_period")
    }
    if counts["grace_period"] <= counts["heartbeat_interval"]:
        raise ParameterError(
            "grace_period",
            f"{counts['grace_period']} s must exceed heartbeat_interval "
            f"({counts['heartbeat_interval']} s)",
        )
    trial_html = as_bool("trial_html", raw["trial_html"])

    train_params = raw["train_params"]
    _check_secrets(train_params)
    train_defaults = train_notebook_parameters(train_notebook)
    check_names(space, train_params, train_defaults)
    enqueue = _check_enqueue(raw["enqueue_trials"], space)
    metric = train_params.get("metric", train_defaults.get("metric", "accuracy"))
    check_objectives_glued(objectives, space, metric)
    pruner = pruning.parse_pruner(raw["pruner"])
    prune_on = pruning.check_pruning(
        pruner, raw["prune_on"], directions, epoch_metrics(searched_metrics(space, metric))
    )

    def setting(name: str) -> Any:
        return train_params.get(name, params.get(name))

    setup_mlflow = setting("setup_mlflow")
    setup_mlflow = True if setup_mlflow is None else as_bool("setup_mlflow", setup_mlflow)
    registers, model_name = registration.check_registering(
        raw["register_model"], setup_mlflow, raw["registered_model_name"]
    )
    recorded = numeric_scraps(searched_metrics(space, metric))
    select = registration.check_select(raw["select"], objectives, directions, recorded)
    tag = params.get("hptuning_tag")
    tag = from_file.get("hptuning_tag") if tag in (None, "") else tag
    rss = raw["kernel_max_rss_mib"]
    return TuneConfig(
        search_space=space,
        directions=directions,
        objectives=objectives,
        sampler=sampler,
        study_name=study_name,
        storage=storage,
        **counts,
        train_params=train_params,
        enqueue_trials=enqueue,
        trial_html=trial_html,
        cell_timeout=_optional_int("cell_timeout", raw["cell_timeout"]),
        kernel_max_trials=_optional_int("kernel_max_trials", raw["kernel_max_trials"]),
        kernel_max_rss_mib=None if rss is None else check_float("kernel_max_rss_mib", rss, low=0),
        pruner=pruner,
        prune_on=prune_on,
        trial_timeout_s=_optional_int("trial_timeout_s", raw["trial_timeout_s"]),
        hptuning_tag=None if tag in (None, "") else str(tag),
        setup_mlflow=setup_mlflow,
        mlflow_tracking_uri=setting("mlflow_tracking_uri"),
        mlflow_exp_name=setting("mlflow_exp_name") or train_defaults.get("mlflow_exp_name"),
        mlflow_artifact_location=setting("mlflow_artifact_location"),
        train_defaults=train_defaults,
        register_model=registers,
        registered_model_name=model_name,
        select=select[0],
        select_direction=select[1],
    )


def requested_n_jobs(params: Mapping[str, Any], config_file: str | Path | None) -> int:
    """``n_jobs`` from the parameters, else the config file, else 1 (bad values are
    :func:`load_config`'s to report): how many trial kernels to start before the
    configuration is read."""
    value = params.get("n_jobs")
    try:
        if value is None:
            value = read_config_file(config_file).get("n_jobs", DEFAULTS["n_jobs"])
        return check_int("n_jobs", value, 1)
    except (ParameterError, ValueError):
        return 1


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
