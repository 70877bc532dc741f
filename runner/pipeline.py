"""``python -m runner pipeline``: prep -> train (-> tune) locally, the DAG of
``polyaxonfiles/pipeline.yml``, each stage skipped when it is up to date.

A stage is up to date when its notebooks' code cells, its resolved parameters (the notebook's
defaults with the given values over them), its data (prep: the raw review files; train and
tune: the processed data set's files), the source of every project module its notebooks
import (:mod:`runner.code_deps`), the lock of its role and the other files it reads are
what its stamp recorded (:mod:`runner.stamps`), and its products are still there. Deciding
that reads files only: no MLflow, TensorFlow or papermill import. prep's processed data set
is passed on to train (``data_path``) and tune (``train_params.data_path``); as they take its
content as their input, a prep run that writes the same data set leaves them up to date.

Each stage is run under its lock (:mod:`runner.locks`): a second pipeline waits, then finds
the stage up to date.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib import paths
from lib.errors import ParameterError
from lib.params import as_list, parameter_defaults
from lib.tracking_check import public_uri
from runner import code_deps, digests
from runner.locks import stage_lock
from runner.stages import STAGES
from runner.stamps import Decision, Inputs, Stamp, UnreadableStamp, decide, read_stamp, write_stamp

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 3600.0
DATA_SET = "processed data set"  # prep's product, a folder
# The lock of the stage's role (scripts/lock.py): a change of any locked package outdates the
# stage, a comment in a requirements file does not (the lock stays as it is).
PREP_REQUIREMENTS = ("requirements-prep.lock",)
TRAIN_REQUIREMENTS = ("requirements.lock",)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class Spec:
    """What the pipeline knows of a stage beyond the stage table."""

    notebooks: tuple[str, ...]  # the stages whose notebooks it runs (tune runs train's)
    requirements: tuple[str, ...]
    extra_modules: tuple[str, ...] = ()  # reached without an import (an entry point)


SPECS = {
    "prep": Spec(("prep",), PREP_REQUIREMENTS),
    "train": Spec(("train",), TRAIN_REQUIREMENTS),
    "tune": Spec(("tune", "train"), TRAIN_REQUIREMENTS, ("runner.trials",)),
}


class State:
    """The pipeline's own files: a stamp and a lock per stage, and the digest cache."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or paths.runs_dir() / ".pipeline"

    def stamp_path(self, stage: str) -> Path:
        return self.folder / f"{stage}.json"

    def lock_path(self, stage: str) -> Path:
        return self.folder / f"{stage}.lock"

    def digests(self) -> digests.FileDigests:
        return digests.FileDigests(self.folder / "file-digests.json")


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The values that the notebook's parameters cell assigns (a value that is not a literal:
    its source text), read without a kernel."""
    return parameter_defaults(notebook)


@dataclass
class Planned:
    """One stage of a pipeline: its parameters and the values given to its notebook."""

    stage: str
    parameters: dict[str, Any]  # resolved: the defaults with the overrides over them
    overrides: dict[str, Any]  # what the notebook is given


def plan(stages: list[str], given: dict[str, dict[str, Any]]) -> list[Planned]:
    """Each stage's parameters: the notebook's defaults, ``given[stage]`` over them, and
    prep's processed data set passed on to train and tune (unless given for them)."""
    from lib.secrets import check_parameter_names

    prep_params = {**notebook_defaults(STAGES["prep"].path), **given.get("prep", {})}
    processed = prep_params["processed_dir"]
    planned = []
    for stage in stages:
        defaults = notebook_defaults(STAGES[stage].path)
        overrides = dict(given.get(stage, {}))
        STAGES[stage].check_names(overrides, defaults)  # the stage commands' refusal
        check_parameter_names({f"{stage}.{name}": v for name, v in overrides.items()})
        if stage == "train" and "data_path" not in overrides:
            overrides["data_path"] = processed
        if stage == "tune":
            fixed = overrides.get("train_params") or {}
            if isinstance(fixed, dict) and "data_path" not in fixed:
                overrides["train_params"] = {**fixed, "data_path": processed}
        try:  # its values, before any stage runs
            STAGES[stage].check_values({**defaults, **overrides})
        except ParameterError as exc:  # named as the pipeline's options name it
            raise ParameterError(f"{stage}.{exc.name}", exc.problem) from None
        resolved = {**defaults, **overrides}
        env_uri = os.environ.get(TRACKING_URI_ENV)
        if (
            "mlflow_tracking_uri" in resolved
            and resolved["mlflow_tracking_uri"] is None
            and env_uri
        ):
            # None means $MLFLOW_TRACKING_URI: another store is another input.
            resolved["mlflow_tracking_uri"] = f"${TRACKING_URI_ENV}={public_uri(env_uri)}"
        planned.append(Planned(stage, resolved, overrides))
    return planned


def _data(planned: Planned, files: digests.FileDigests) -> dict[str, Any]:
    params = planned.parameters
    if planned.stage == "prep":
        raw_dirs = as_list("raw_dirs", params["raw_dirs"])
        return {"what": "raw data", "digest": files.raw_data(raw_dirs)}
    if planned.stage == "train":
        data_path = params["data_path"]
    else:
        fixed = params.get("train_params")
        fixed = fixed if isinstance(fixed, dict) else {}
        data_path = fixed.get("data_path") or notebook_defaults(STAGES["train"].path)["data_path"]
    return {"what": "processed data", "digest": files.processed_data(data_path)}


def inputs_of(planned: Planned, files: digests.FileDigests) -> Inputs:
    """What ``planned`` reads, now."""
    spec = SPECS[planned.stage]
    notebooks = [STAGES[name].path for name in spec.notebooks]
    sources = [source for nb in notebooks for source in code_deps.code_cells(nb)]
    modules = code_deps.closure(sources, spec.extra_modules)
    other = [paths.resolve(name) for name in spec.requirements]
    if planned.stage == "tune" and planned.parameters.get("config_file"):
        other.append(paths.resolve(planned.parameters["config_file"]))
    return Inputs(
        notebooks={digests.relative(nb): digests.notebook_code(nb) for nb in notebooks},
        parameters=planned.parameters,
        data=_data(planned, files),
        code={digests.relative(p): files.file(p) for p in modules.values()},
        files={digests.relative(p): files.maybe_file(p) or "missing" for p in other},
    )


def product_digest(product: dict[str, Any], files: digests.FileDigests) -> str | None:
    if product.get("kind") == "folder":
        return files.processed_data(product["path"])
    return files.maybe_file(paths.resolve(product["path"]))


def judge(
    planned: Planned, state: State, files: digests.FileDigests, force: bool = False
) -> tuple[Decision, Inputs]:
    """Whether ``planned`` is up to date, and its inputs now."""
    inputs = inputs_of(planned, files)
    try:
        stamp = read_stamp(state.stamp_path(planned.stage))
    except UnreadableStamp as exc:
        path = state.stamp_path(planned.stage)
        log.warning(
            "%s: the stamp %s is unreadable (%s): running it again", planned.stage, path, exc
        )
        return decide(planned.stage, None, inputs, {}, unreadable=str(exc)), inputs
    products = {}
    if stamp is not None:
        products = {n: product_digest(p, files) for n, p in stamp.products.items()}
    return decide(planned.stage, stamp, inputs, products, force=force), inputs


LOCAL_UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` serves by default


def where_lines(stamp: Stamp) -> list[str]:
    """Where the products of ``stamp``'s run are, its MLflow run and how to open it."""
    lines = [f"  {name}: {p['path']}" for name, p in stamp.products.items()]
    run_id, uri = stamp.run.get("mlflow_run_id"), stamp.run.get("tracking_uri")
    if not run_id or not uri:
        return lines
    lines.append(f"  MLflow run {run_id} in {uri}")
    served = uri.startswith(("http://", "https://"))
    experiment = stamp.run.get("mlflow_experiment_id")
    page = f"/#/experiments/{experiment}/runs/{run_id}" if experiment else ""
    if served:
        lines.append(f"  open it: {uri.rstrip('/')}{page}")
    else:
        then = f", then {LOCAL_UI}{page}" if page else ""
        lines.append(f"  open it: mlflow ui --backend-store-uri {uri}{then}")
    return lines


def _experiment_id(run_id: str | None, uri: str | None) -> str | None:
    """The MLflow experiment of a run that just ended (MLflow is loaded by then: the hook
    logged the notebook to the run), for the run's page; None if it cannot be asked."""
    if not run_id or not uri:
        return None
    try:
        import mlflow

        return mlflow.MlflowClient(uri).get_run(run_id).info.experiment_id
    except Exception as exc:  # only a link is lost
        log.debug("no experiment id for MLflow run %s: %s", run_id, exc)
        return None


def _products(planned: Planned, scraps: dict[str, Any], run_dir: Path, files) -> dict:
    params = planned.parameters
    if planned.stage == "prep":
        path = params["processed_dir"]
        found = {"kind": "folder", "path": digests.relative(path)}
        return {DATA_SET: {**found, "digest": files.processed_data(path)}}
    if planned.stage == "train":
        model = paths.resolve(scraps.get("model_path") or Path(params["model_dir"], "model.keras"))
        return {"model": {"path": digests.relative(model), "digest": files.maybe_file(model)}}
    trials = scraps.get("trials_dir")
    table = paths.resolve((Path(trials).parent if trials else run_dir) / "study" / "trials.csv")
    return {"study": {"path": digests.relative(table), "digest": files.maybe_file(table)}}


@dataclass
class Options:
    kernel: str | None = None
    log_output: bool = False
    render: bool = True
    lock_timeout: float = LOCK_TIMEOUT_S


def _execute(planned: Planned, options: Options) -> tuple[int, Any]:
    from runner.cli import _report
    from runner.execute import KERNEL_NAME, execute_stage
    from runner.hooks import default_hooks

    execution = execute_stage(
        STAGES[planned.stage],
        planned.overrides,
        kernel_name=options.kernel or KERNEL_NAME,
        log_output=options.log_output,
        render=options.render,
        hooks=default_hooks(),
    )
    return _report(planned.stage, execution), execution


def run_pipeline(
    stages: list[str],
    given: dict[str, dict[str, Any]],
    force: set[str] | None = None,
    options: Options | None = None,
    state: State | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run the outdated ones of ``stages`` in order; the exit status (a failed stage's)."""
    force, options, state = force or set(), options or Options(), state or State()
    started = time.perf_counter()
    ran = []
    files = state.digests()  # one cache for the run: a later stage finds what prep hashed
    for planned in plan(stages, given):
        name = planned.stage

        def waiting(pid: str, name: str = name) -> None:
            say(f"{name}: waiting for another pipeline (pid {pid}), which is running this stage")

        with stage_lock(state.lock_path(name), name, options.lock_timeout, waiting):
            decision, inputs = judge(planned, state, files, force=name in force)
            files.save()
            say(decision.line())
            if decision.up_to_date:
                assert decision.stamp is not None
                for line in where_lines(decision.stamp):
                    say(line)
                continue
            code, execution = _execute(planned, options)
            if code:
                return code
            run = {
                "run_dir": digests.relative(execution.run_dir),
                "name": execution.run_dir.name,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(execution.seconds, 1),
                "mlflow_run_id": execution.scraps.get("mlflow_run_id"),
                "tracking_uri": execution.scraps.get("mlflow_tracking_uri"),
            }
            run["mlflow_experiment_id"] = _experiment_id(run["mlflow_run_id"], run["tracking_uri"])
            products = _products(planned, execution.scraps, execution.run_dir, files)
            stamp = Stamp(name, inputs, products, run)
            write_stamp(state.stamp_path(name), stamp)
            files.save()
            ran.append(name)
            say(f"{name}: done in {execution.seconds:.1f} s, run {execution.run_dir.name}")
            for line in where_lines(stamp):
                say(line)
    seconds = time.perf_counter() - started
    if ran:
        say(f"pipeline: ran {', '.join(ran)} in {seconds:.1f} s")
    else:
        say(f"pipeline: every stage is up to date ({seconds:.1f} s)")
    return 0


def status_lines(stages: list[str], given: dict[str, dict[str, Any]], state=None) -> list[str]:
    """Each stage: up to date or not and why, its last run, its MLflow run, when it ran."""
    state = state or State()
    files = state.digests()
    lines = []
    for planned in plan(stages, given):
        decision, _ = judge(planned, state, files)
        if decision.up_to_date:
            lines.append(f"{planned.stage}: up to date")
        else:
            lines.append(f"{planned.stage}: outdated: {'; '.join(decision.reasons)}")
        stamp = decision.stamp
        if stamp is None:
            try:
                stamp = read_stamp(state.stamp_path(planned.stage))
            except UnreadableStamp:
                stamp = None
        if stamp is None:
            lines.append("  last run: none")
            continue
        lines.append(
            f"  last run: {stamp.run.get('run_dir')} (finished {stamp.run.get('finished')}, "
            f"{stamp.run.get('seconds')} s)"
        )
        lines.extend(where_lines(stamp))
    files.save()
    return lines
