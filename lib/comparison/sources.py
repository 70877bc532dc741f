"""Which two runs a comparison is about: a reference (``run_a``, ``run_b``) resolved to an
MLflow run, each run's stage, and the checks that refuse a pair before anything is shown.

A reference is a run id; ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (the run that
logged that version); or ``latest`` (the latest finished run of ``experiment`` and
``stage``). A run's stage is its tag ``stage``; a run logged before runs carried it is
recognised by what it logged (:func:`stage_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib.core.errors import ComparisonError, ModelError, TrackingError, first_line
from lib.tracking import registry

if TYPE_CHECKING:
    from mlflow.entities import Run

STAGE_TAG = "stage"
GIT_DIRTY_TAG = "git_dirty"
LATEST = "latest"
STAGES = ("train", "tune", "infer")  # the stages whose runs MLflow holds
_LATEST_SEARCHED = 200  # finished runs looked through for the latest of a stage
_PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class Source:
    """A resolved reference: the run, its stage (None: not recognised) and how it was named."""

    name: str  # the parameter: run_a or run_b
    reference: str
    run: Run
    stage: str | None

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def started(self) -> int:
        return int(self.run.info.start_time or 0)

    def label(self) -> str:
        """``run 0123abcd (train)``, with the alias or ``latest`` it was named by."""
        named = "" if self.reference == self.run_id else f" = {self.reference}"
        return f"run {self.run_id[:8]}{named} ({self.stage or 'unknown stage'})"


def stage_of(tags: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The run's stage: its tag ``stage``, else (a run logged before the tag) what it logged:
    a study's name without a parent (a tune parent run), a scoring input (infer), a model
    and epochs (train: trials included). None when nothing says."""
    if tags.get(STAGE_TAG):
        return tags[STAGE_TAG]
    if "study_name" in tags and _PARENT_TAG not in tags:
        return "tune"
    if "input_path" in params and "model_uri" in params:
        return "infer"
    if "model_name" in params and "epochs" in params:
        return "train"
    return None


# What a store answers for an id that names no run: not found, or (a server) not an id at all.
_NO_RUN = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _run(client, reference: str, name: str):
    import mlflow

    try:
        return client.get_run(reference)
    except mlflow.exceptions.MlflowException as exc:
        if getattr(exc, "error_code", "") not in _NO_RUN:
            raise TrackingError(
                f"{name}: cannot read run {reference!r}: {first_line(exc)[:200]}; check that the "
                "tracking store is reachable, then run again"
            ) from None
        raise ComparisonError(
            f"{name}: no run {reference!r} in the tracking store ({first_line(exc)[:120]}); "
            "give a run id, models:/NAME@ALIAS or latest"
        ) from None


def _model_run_id(reference: str, name: str, tracking_uri: str | None) -> str:
    try:
        _, _, found = registry.resolve_uri(reference, tracking_uri)
    except ModelError as exc:
        raise ComparisonError(f"{name}: {exc}") from None
    if not found.run_id:
        raise ComparisonError(f"{name}: {reference} was not logged by a run: nothing to compare")
    return found.run_id


def _latest(client, name: str, experiment: str, stage: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ComparisonError(
            f"{name}: latest: no experiment {experiment!r}; set experiment to the one that holds "
            f"the {stage} runs"
        )
    runs = client.search_runs(
        [found.experiment_id],
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=_LATEST_SEARCHED,
    )
    for run in runs:
        if stage_of(run.data.tags, run.data.params) == stage:
            return run.info.run_id
    raise ComparisonError(
        f"{name}: latest: experiment {experiment!r} has no finished {stage} run; give a run id"
    )


def resolve(
    name: str,
    reference: str,
    client,
    *,
    tracking_uri: str | None = None,
    experiment: str = "sentiment-classification",
    stage: str = "train",
) -> Source:
    """The run that ``reference`` (parameter ``name``) names, with its stage.
    ComparisonError, one line, when there is no such run, model version or alias."""
    reference = reference.strip()
    if reference.startswith(registry.REGISTRY_SCHEME):
        run_id = _model_run_id(reference, name, tracking_uri)
    elif reference == LATEST:
        run_id = _latest(client, name, experiment, stage)
    else:
        run_id = reference
    run = _run(client, run_id, name)
    return Source(name, reference, run, stage_of(run.data.tags, run.data.params))


def check_pair(a: Source, b: Source) -> None:
    """Refuse one run twice and two runs of different stages (ComparisonError, one line)."""
    if a.run_id == b.run_id:
        raise ComparisonError(
            f"run_a and run_b are the same run {a.run_id} ({a.reference} and {b.reference}): "
            "give two different runs"
        )
    if a.stage != b.stage:
        raise ComparisonError(
            f"run_a is {_a(a.stage)} run and run_b {_a(b.stage)} run: compare two runs of one stage"
        )


def newer_first(a: Source, b: Source) -> tuple[Source, Source]:
    """The pair as it is shown: the newer run, then the older one."""
    return (a, b) if a.started >= b.started else (b, a)


def resolve_pair(params: Mapping[str, Any], client) -> tuple[Source, Source]:
    """Both references of checked compare parameters, checked as a pair, newer first."""
    options = {
        "tracking_uri": params.get("mlflow_tracking_uri"),
        "experiment": params["experiment"],
        "stage": params["stage"],
    }
    a = resolve("run_a", params["run_a"], client, **options)
    b = resolve("run_b", params["run_b"], client, **options)
    check_pair(a, b)
    return newer_first(a, b)


def _a(stage: str | None) -> str:
    return {"infer": "an infer", None: "an unrecognised"}.get(stage, f"a {stage}")
