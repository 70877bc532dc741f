"""``python -m runner pipeline``: prep -> train (-> tune) locally, the DAG of
``polyaxonfiles/pipeline.yml``, each stage skipped when it is up to date.

A stage is up to date when its notebooks' code cells, its resolved parameters (the notebook's
defaults with the given values over them), its data (prep: the raw review files; train and
tune: the processed data set's files), the source of every project module its notebooks
import (:mod:`lib.core.code_deps`), the lock of its role and the other files it reads
are what its stamp recorded (:mod:`runner.pipeline.stamps`), and its products are still there.
Deciding that reads files only: no MLflow, TensorFlow or papermill import. prep's processed data set
is passed on to train (``data_path``) and tune (``train_params.data_path``); as they take its
content as their input, a prep run that writes the same data set leaves them up to date. What
each stage reads, passes on and leaves is its record in :mod:`runner.stages`; this module
holds no stage's name.

Each stage is run under its lock (:mod:`runner.pipeline.locks`): a second pipeline waits, then finds
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

from lib.core import code_deps, gcs, paths
from lib.core.errors import ParameterError, UserError
from lib.core.secrets import check_parameter_names
from lib.tracking.store_check import public_uri
from runner.execution.run_stage import run_stage
from runner.pipeline import data_inputs, digests
from runner.pipeline.locks import stage_lock
from runner.pipeline.stamps import (
    Decision,
    Inputs,
    Stamp,
    UnreadableStamp,
    decide,
    read_stamp,
    write_stamp,
)
from runner.stages import STAGES, Product, Stage, get_parameter, set_default

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 3600.0
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


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


@dataclass
class Planned:
    """One stage of a pipeline: its parameters and the values given to its notebook."""

    stage: str
    parameters: dict[str, Any]  # resolved: the defaults with the overrides over them
    overrides: dict[str, Any]  # what the notebook is given


def plan(
    stages: list[str], given: dict[str, dict[str, Any]], state: State | None = None
) -> list[Planned]:
    """Each stage's parameters: the notebook's defaults, ``given[stage]`` over them, and
    what it reads from an upstream stage (:attr:`Stage.upstream`: prep's processed data set
    for train and tune, train's model for infer) passed on unless given. A product that the
    stage's last successful run left (``state``'s stamp) may be replaced: its
    :attr:`Product.overwrite` parameter is given, unless set, but not recorded."""
    state = state or State()
    upstream_params: dict[str, dict[str, Any]] = {}

    def params_of(name: str) -> dict[str, Any]:  # an upstream stage's, run or not
        if name not in upstream_params:
            upstream_params[name] = {**STAGES[name].defaults(), **given.get(name, {})}
        return upstream_params[name]

    planned = []
    for name in stages:
        stage = STAGES[name]
        defaults = stage.defaults()
        overrides = dict(given.get(name, {}))
        stage.check_names(overrides, defaults)  # the stage commands' refusal
        check_parameter_names({f"{name}.{key}": v for key, v in overrides.items()})
        for wire in stage.upstream:
            source = STAGES[wire.stage]
            params = params_of(wire.stage)
            if wire.product:
                value = str(source.product(wire.source).locate(params, {}, Path()))
            else:
                value = params[wire.source]
            set_default(overrides, wire.parameter, value)
        resolved = {**defaults, **overrides}
        overrides.update(own_products(stage, resolved, overrides, state))
        try:  # its values, before any stage runs
            stage.check_values({**defaults, **overrides})
        except ParameterError as exc:  # named as the pipeline's options name it
            raise ParameterError(f"{name}.{exc.name}", exc.problem) from None
        env_uri = os.environ.get(TRACKING_URI_ENV)
        if (
            "mlflow_tracking_uri" in resolved
            and resolved["mlflow_tracking_uri"] is None
            and env_uri
        ):
            # None means $MLFLOW_TRACKING_URI: another store is another input.
            resolved["mlflow_tracking_uri"] = f"${TRACKING_URI_ENV}={public_uri(env_uri)}"
        planned.append(Planned(name, resolved, overrides))
    return planned


def own_products(
    stage: Stage, resolved: dict[str, Any], given: dict[str, Any], state: State
) -> dict[str, bool]:
    """``{"overwrite": True}`` for each product with an :attr:`Product.overwrite` parameter
    (not given) that is, where ``resolved`` puts it, what the stage's last successful run
    left there, unchanged since: the pipeline replaces its own output, never a file it did
    not make."""
    wanted = [p for p in stage.products if p.overwrite and p.overwrite not in given]
    if not wanted:
        return {}
    try:
        stamp = read_stamp(state.stamp_path(stage.name))
    except UnreadableStamp:
        return {}
    files = state.digests()
    replace = {}
    for product in wanted:
        made = stamp.products.get(product.name) if stamp else None
        here = digests.relative(product.locate(resolved, {}, Path()))
        if made and made.get("path") == here and made.get("digest") is not None:
            if product_digest(made, files) == made["digest"]:
                replace[product.overwrite] = True
    files.save()
    return replace


def inputs_of(planned: Planned, files: digests.FileDigests) -> Inputs:
    """What ``planned`` reads, now (:class:`runner.pipeline.data_inputs.Unresolved` for an input
    that cannot be read now)."""
    stage = STAGES[planned.stage]
    data, others = data_inputs.of_stage(
        stage, planned.parameters, {**stage.defaults(), **planned.overrides}, files
    )
    notebooks = stage.notebooks()
    sources = [source for nb in notebooks for source in code_deps.code_cells(nb)]
    modules = code_deps.closure(sources, stage.extra_modules)
    other = [paths.resolve(name) for name in stage.requirements]
    for name in stage.file_parameters:
        if value := get_parameter(planned.parameters, name):
            other.append(paths.resolve(value))
    return Inputs(
        notebooks={digests.relative(nb): digests.notebook_code(nb) for nb in notebooks},
        parameters=planned.parameters,
        data=data,
        code={digests.relative(p): files.file(p) for p in modules.values()},
        files={digests.relative(p): files.maybe_file(p) or "missing" for p in other},
        others=others,
    )


def product_digest(product: dict[str, Any], files: digests.FileDigests) -> str | None:
    """The digest of a product that a stamp lists, now; None when it is gone."""
    if product.get("kind") == "folder":
        return files.processed_data(product["path"])
    if gcs.is_gcs_uri(product["path"]):
        return data_inputs.objects(product["path"])
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


def products_of(
    planned: Planned, scraps: dict[str, Any], run_dir: Path, files: digests.FileDigests
) -> dict[str, dict[str, Any]]:
    """What a successful run of ``planned`` left (:attr:`Stage.products`): where, and its
    digest, for its stamp."""
    return {
        product.name: _product(product, planned.parameters, scraps, run_dir, files)
        for product in STAGES[planned.stage].products
    }


def _product(product: Product, params, scraps, run_dir: Path, files) -> dict[str, Any]:
    found = {"path": digests.relative(product.locate(params, scraps, run_dir))}
    if product.kind == "folder":
        return {"kind": "folder", **found, "digest": files.processed_data(found["path"])}
    return {**found, "digest": product_digest(found, files)}


@dataclass
class Options:
    kernel: str | None = None
    log_output: bool = False
    render: bool = True
    lock_timeout: float = LOCK_TIMEOUT_S


def _execute(planned: Planned, options: Options) -> tuple[int, Any]:
    return run_stage(
        STAGES[planned.stage],
        planned.overrides,
        kernel_name=options.kernel,
        log_output=options.log_output,
        render=options.render,
    )


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
    for planned in plan(stages, given, state):
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
            products = products_of(planned, execution.scraps, execution.run_dir, files)
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
    for planned in plan(stages, given, state):
        try:
            decision, _ = judge(planned, state, files)
        except UserError as exc:  # an input that cannot be read now: said, not a failure
            decision = Decision(planned.stage, False, [str(exc)])
            lines.append(f"{planned.stage}: cannot tell whether it is up to date: {exc}")
        else:
            lines.append(
                f"{planned.stage}: up to date"
                if decision.up_to_date
                else f"{planned.stage}: outdated: {'; '.join(decision.reasons)}"
            )
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
