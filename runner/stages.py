"""The stage records: everything the runner knows of a stage, declared once.

A :class:`Stage` names its notebook and its parameter checks (used by the stage commands
before a kernel starts), what it reads from an upstream stage (:class:`Upstream`: train's
``data_path`` is prep's ``processed_dir``, infer's ``model_uri`` train's model, unless given),
its data inputs and its products (:class:`DataInput`, :class:`Product`: what the pipeline's
stamp hashes and records), and what else its stamp covers (requirement files, other stages'
notebooks it runs, files named by parameters). The stage commands, the pipeline, ``status``
and the trials all read :data:`STAGES`: adding a stage is one record here plus its notebook.

Imports only lib, and nothing heavy: the runner decides and refuses before papermill loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core import paths
from lib.core.params import parameter_defaults, unknown_name
from lib.core.pins import TRAIN_LOCK

# The lock of the stage's role (scripts/lock.py): a change of any locked package outdates the
# stage, a comment in a requirements file does not (the lock stays as it is).
PREP_REQUIREMENTS = ("requirements-prep.lock",)
TRAIN_REQUIREMENTS = (TRAIN_LOCK,)


def get_parameter(params: Mapping[str, Any], name: str) -> Any:
    """The value of parameter ``name``; a dotted name (``train_params.data_path``) is a key
    of a mapping parameter. None when it is not there."""
    head, dot, key = name.partition(".")
    value = params.get(head)
    if not dot:
        return value
    return value.get(key) if isinstance(value, Mapping) else None


def set_default(params: dict[str, Any], name: str, value: Any) -> None:
    """Set parameter ``name`` (dotted: a key of a mapping parameter, which an empty value
    becomes) to ``value`` unless it is given; a parameter that is not a mapping is left for
    the stage's checks to refuse."""
    head, dot, key = name.partition(".")
    if not dot:
        params.setdefault(head, value)
        return
    fixed = params.get(head) or {}
    if isinstance(fixed, dict) and key not in fixed:
        params[head] = {**fixed, key: value}


@dataclass(frozen=True)
class Upstream:
    """A parameter that, unless given, takes an upstream stage's parameter (the pipeline
    passes prep's ``processed_dir`` on as train's ``data_path``) or, with ``product``, where
    its product will be (train's model file as infer's ``model_uri``)."""

    parameter: str  # this stage's (dotted for a key of a mapping parameter)
    stage: str  # the upstream stage
    source: str  # the upstream stage's parameter, or with ``product`` its product's name
    product: bool = False


@dataclass(frozen=True)
class DataInput:
    """The data a stage reads, hashed into its stamp by content."""

    what: str  # as stamps and status name it: "raw data", "processed data", "model"
    parameter: str  # the parameter that names it (dotted for a key of a mapping parameter)
    # How it is hashed (runner.pipeline.data_inputs): "raw folders" (a list of review
    # folders), "data set" (a processed folder), "reviews" (a file or folder of reviews to
    # score, local or gs://) or "model" (a model URI: an alias by the version it names now).
    kind: str
    # (stage, parameter) whose notebook default applies when the parameter is empty: tune's
    # train_params.data_path falls back to the train notebook's data_path.
    fallback: tuple[str, str] | None = None


# Where a product is: (resolved parameters, scraps, run folder) -> a path.
Locate = Callable[[Mapping[str, Any], Mapping[str, Any], Path], "str | Path"]


@dataclass(frozen=True)
class Product:
    """What a successful run leaves, recorded in its stamp: a stage whose product is gone
    is run again."""

    name: str
    kind: str  # "folder" (a processed data set, hashed by content) or "file" (or gs://)
    locate: Locate
    # The parameter that lets a run replace it (infer's ``overwrite``): the pipeline sets it
    # when the product there is the one the stage's last run left, never for another file.
    overwrite: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str  # relative to notebooks/, or absolute
    description: str
    # Whether the notebook logs to an MLflow run, so that the runner's hook needs MLflow's
    # store modules after it (imported while the notebook runs).
    tracked: bool = True
    # "module:function" that checks its parameters without data or TensorFlow: given all the
    # notebook's parameters, ParameterError names the first bad one. Imported when used, so
    # that a command imports only its own stage's checks.
    check: str | None = None
    # -- the pipeline's view: what it passes on, what the stamp hashes, what it records --
    upstream: tuple[Upstream, ...] = ()
    data: DataInput | None = None
    also_reads: tuple[DataInput, ...] = ()  # its other data inputs (infer: the model)
    products: tuple[Product, ...] = ()
    requirements: tuple[str, ...] = ()  # the locks of its role, relative to the root
    also_runs: tuple[str, ...] = ()  # stages whose notebooks it executes (tune: train)
    extra_modules: tuple[str, ...] = ()  # its code reached without an import (entry point)
    file_parameters: tuple[str, ...] = ()  # parameters naming a file it reads
    in_default_pipeline: bool = True  # in `runner pipeline` without --stages

    @property
    def path(self) -> Path:
        return paths.notebooks_dir() / self.notebook  # an absolute notebook path wins

    def defaults(self) -> dict[str, Any]:
        """The notebook's parameters and their defaults, read without a kernel."""
        return parameter_defaults(self.path)

    def check_names(self, names: Any, defaults: Mapping[str, Any] | None = None) -> None:
        """ParameterError for the first of ``names`` that the notebook has no parameter for,
        with the closest names it has: ``train: unknown parameter 'optimizer'; did you mean
        'optimiser'?``."""
        known = self.defaults() if defaults is None else defaults
        for name in names:
            if name not in known:
                raise unknown_name(self.name, name, known)

    def check_values(self, params: Mapping[str, Any]) -> None:
        """Run :attr:`check` on all the notebook's parameters ``params``."""
        if self.check is not None:
            module, _, function = self.check.partition(":")
            getattr(importlib.import_module(module), function)(params)

    def check_parameters(self, given: Mapping[str, Any]) -> None:
        """Refuse, before any kernel starts, a name the notebook does not have, or a value
        that :attr:`check` refuses (with the notebook's defaults for the rest)."""
        defaults = self.defaults()
        self.check_names(given, defaults)
        self.check_values({**defaults, **given})

    def product(self, name: str) -> Product:
        """Its product called ``name``."""
        return next(p for p in self.products if p.name == name)

    def notebooks(self) -> list[Path]:
        """The notebooks it executes: its own, then those of :attr:`also_runs`."""
        return [self.path] + [get_stage(name).path for name in self.also_runs]

    def data_path(self, params: Mapping[str, Any]) -> Any:
        """The value of its data input's parameter in ``params`` (resolved), or the
        fallback's notebook default when that is empty."""
        assert self.data is not None
        value = get_parameter(params, self.data.parameter)
        if not value and self.data.fallback:
            stage, name = self.data.fallback
            value = get_stage(stage).defaults()[name]
        return value


def _model_file(params: Mapping[str, Any], scraps: Mapping[str, Any], run_dir: Path):
    return scraps.get("model_path") or Path(params["model_dir"], "model.keras")


def _scores(params: Mapping[str, Any], scraps: Mapping[str, Any], run_dir: Path) -> str:
    return str(params["output_path"])


def _trials_table(params: Mapping[str, Any], scraps: Mapping[str, Any], run_dir: Path):
    trials = scraps.get("trials_dir")
    return (Path(trials).parent if trials else run_dir) / "study" / "trials.csv"


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "prep",
            "prep.ipynb",
            "raw review folders -> one processed data set",
            tracked=False,
            check="lib.data.prep_checks:check_prep_params",
            data=DataInput("raw data", "raw_dirs", "raw folders"),
            products=(Product("processed data set", "folder", lambda p, s, r: p["processed_dir"]),),
            requirements=PREP_REQUIREMENTS,
        ),
        Stage(
            "train",
            "train.ipynb",
            "train, evaluate and export a Keras model, tracked in MLflow",
            check="lib.model.train_checks:check_train_values",
            upstream=(Upstream("data_path", "prep", "processed_dir"),),
            data=DataInput("processed data", "data_path", "data set"),
            products=(Product("model", "file", _model_file),),
            requirements=TRAIN_REQUIREMENTS,
        ),
        Stage(
            "tune",
            "tune.ipynb",
            "an Optuna study whose trials are executed train notebooks",
            check="lib.tuning.trials:check_tune_params",
            upstream=(Upstream("train_params.data_path", "prep", "processed_dir"),),
            data=DataInput(
                "processed data", "train_params.data_path", "data set", ("train", "data_path")
            ),
            products=(Product("study", "file", _trials_table),),
            requirements=TRAIN_REQUIREMENTS,
            also_runs=("train",),
            extra_modules=("runner.trial_backend",),  # the trial backend, found by entry point
            file_parameters=("config_file",),
            in_default_pipeline=False,
        ),
        Stage(
            "infer",
            "infer.ipynb",
            "score files of reviews with a trained model, tracked in MLflow",
            check="lib.inference.infer_checks:check_infer_params",
            upstream=(Upstream("model_uri", "train", "model", product=True),),
            data=DataInput("reviews", "input_path", "reviews"),
            also_reads=(DataInput("model", "model_uri", "model"),),
            products=(Product("scores", "file", _scores, overwrite="overwrite"),),
            requirements=TRAIN_REQUIREMENTS,  # it runs in the training image
            # Its input is the user's reviews, not the pipeline's data: asked for by name.
            in_default_pipeline=False,
        ),
    )
}


# Executed like a stage (its notebook, its checks before any kernel, its notebook logged to
# its MLflow run) but not a pipeline stage: it reads two runs, not the pipeline's data, so it
# is not in STAGES (`python -m runner compare RUN_A RUN_B`, runner.cli.compare).
COMPARE = Stage(
    "compare",
    "compare.ipynb",
    "what changed between two runs of one stage, logged as a report in MLflow",
    check="lib.comparison.compare_checks:check_compare",
    in_default_pipeline=False,
)


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known stages: {', '.join(STAGES)}") from None
