"""``python -m runner promote``: move a registered model's ``champion`` alias to a candidate
version only when it beats the champion on held-out test reviews (:mod:`lib.tracking.promotion`).

Every input is checked before anything is written: the model name, the candidate (an alias
or a version), the champion, both models (they load, and their signatures are the same),
the test data. Then one MLflow run (experiment ``model-promotion``) scores both, in a child
run each; the decision goes on that run and, as ``promotion_*`` tags, on the candidate
version; the alias moves if the candidate won (or with ``--force``). A kept candidate is
not an error: exit status 0 either way, 2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib.core import tf_runtime
from lib.core.errors import ModelError, ParameterError
from lib.model.train_spec import DEFAULT_MODEL_NAME
from lib.tracking import registry
from lib.tracking import runs as tracking
from lib.tracking.store_check import check_store

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from lib.tracking.promotion import Decision, HeldOutReviews, Metric

log = logging.getLogger(__name__)

COMMAND = "promote"
DESCRIPTION = (
    "Score a candidate version (--alias, default challenger, or --version) and the current "
    "champion of a registered model on the same test reviews (--data, default the processed "
    "data set the candidate was trained on), and move the champion alias to the candidate "
    "when it beats the champion by at least --min-gain on --metric; with no champion yet, "
    "the candidate becomes champion; --force moves it anyway (a rollback). The decision is "
    "recorded either way: promotion_* tags on the candidate version, and a run in the "
    "MLflow experiment model-promotion."
)


def _version(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a version number: give e.g. 3")
    return int(value)


def add_command(sub: Any) -> None:
    """The ``promote`` subcommand, on the runner's subparsers."""
    p = sub.add_parser(
        COMMAND,
        help="move the champion alias to a better registered version",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help=f"the registered model (default {DEFAULT_MODEL_NAME})",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--alias",
        default=None,
        help=f"the candidate is the version this alias names (default {registry.CHALLENGER})",
    )
    which.add_argument("--version", type=_version, default=None, help="the candidate version")
    p.add_argument(
        "--metric",
        default="test_accuracy",
        help="test_accuracy (default), test_precision, test_recall, test_f1, test_auc or "
        "test_loss (lower is better); the test_ prefix may be left out",
    )
    p.add_argument(
        "--min-gain",
        type=float,
        default=0.002,
        help="how much better than the champion the candidate must be (default 0.002)",
    )
    p.add_argument("--force", action="store_true", help="move the alias anyway (recorded)")
    p.add_argument(
        "--data",
        default=None,
        help="the processed data set whose test reviews both are scored on (default: the "
        "candidate run's data_path)",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="the MLflow store (default $MLFLOW_TRACKING_URI, else the project's mlflow.db)",
    )


@dataclass(frozen=True)
class _Request:
    name: str  # the registered model
    metric: Metric
    min_gain: float
    force: bool
    uri: str  # the store


@dataclass(frozen=True)
class _Contender:
    role: str  # candidate or champion
    version: ModelVersion
    model: Any  # its pyfunc model


def run(args: argparse.Namespace) -> int:
    """Check, score, decide, record, print the decision's line; the exit status."""
    # lib.tracking.promotion imports pyarrow (~0.5 s, measured): only when promoting, not at
    # start-up.
    from lib.tracking import promotion

    metric = promotion.check_metric(args.metric)
    min_gain = promotion.check_min_gain(args.min_gain)
    try:
        name = registry.check_model_name(args.model_name)
    except ParameterError as exc:
        raise ParameterError("--model-name", exc.problem) from None
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    check_store(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)  # models:/ URIs are read from the same store
    request = _Request(name, metric, min_gain, args.force, uri)
    alias = args.alias if args.alias is not None or args.version else registry.CHALLENGER
    candidate = registry.resolve(name, alias=alias, version=args.version, tracking_uri=uri)
    champion = _champion(name, uri)
    if champion is not None and champion.version == candidate.version:
        print(f"{name} v{candidate.version} is already {registry.CHAMPION}: nothing moved")
        return 0
    # Before the models import TensorFlow (one logged before its load_context started it so
    # would print TensorFlow's C++ start-up lines): those lines logged, not printed.
    tf_runtime.start()
    contenders = [_Contender("candidate", candidate, promotion.load_version(name, candidate))]
    base = _champion_model(name, champion, args.force)
    if base is not None:
        contenders.append(_Contender("champion", champion, base))
        promotion.check_signatures(name, candidate, contenders[0].model, champion, base)
    if args.data:
        data = promotion.load_test_data("--data", args.data)
    else:
        option = f"data_path of {name} v{candidate.version}'s run (or give --data)"
        data = promotion.load_test_data(option, _trained_on(name, candidate, uri))
    # Everything is checked: from here on the promotion is recorded.
    print(_score_and_record(request, contenders, champion, data).line())
    return 0


def _champion_model(name: str, champion, force: bool):
    """The champion's pyfunc model; None when there is no champion, or, with ``force``, when
    it cannot be loaded (a rollback away from a broken champion scores the candidate alone)."""
    # lib.tracking.promotion imports pyarrow (~0.5 s, measured): only when promoting, not at
    # start-up.
    from lib.tracking import promotion

    if champion is None:
        return None
    fix = "give --force to move champion to the candidate anyway (it is then scored alone)"
    try:
        return promotion.load_version(name, champion, fix=fix)
    except ModelError as exc:
        if not force:
            raise
        log.warning("champion not scored: %s", exc)
        return None


def _champion(name: str, uri: str):
    """The version the champion alias names, or None when there is none yet."""
    client = registry.client(uri)
    with tracking.server_errors("reading the registered model"):
        aliases = dict(client.get_registered_model(name).aliases or {})
    if registry.CHAMPION not in aliases:
        return None
    return registry.resolve(name, alias=registry.CHAMPION, tracking_uri=uri)


def _trained_on(name: str, candidate, uri: str) -> str:
    """The candidate run's ``data_path`` parameter."""
    data_path = None
    if candidate.run_id:
        with tracking.server_errors("reading the candidate's run"):
            data_path = registry.client(uri).get_run(candidate.run_id).data.params.get("data_path")
    if not data_path:
        raise ParameterError(
            "--data",
            f"{name} v{candidate.version} has no run with a data_path parameter: give --data, "
            "the processed data set to score the models on",
        )
    return data_path


def _score_and_record(
    request: _Request, contenders: list[_Contender], champion, data: HeldOutReviews
) -> Decision:
    """The promotion run: each contender scored in a child run, the decision recorded, the
    alias moved if the candidate won (or was forced)."""
    import mlflow

    # lib.tracking.promotion imports pyarrow (~0.5 s, measured): only when promoting, not at
    # start-up.
    from lib.tracking import promotion

    candidate = contenders[0].version
    champion = champion.version if champion is not None else None
    run = tracking.start_run(
        tracking_uri=request.uri,
        experiment_name=promotion.EXPERIMENT,
        run_name=f"promote {request.name} v{candidate.version}",
        tags=tracking.run_tags(
            extra={"model_name": request.name, "candidate_version": candidate.version}
        ),
    )
    try:
        tracking.log_params(
            promotion.run_params(
                request.name,
                candidate.version,
                champion,
                request.metric,
                request.min_gain,
                request.force,
                data,
            )
        )
        results = {}
        for contender in contenders:
            with mlflow.start_run(
                experiment_id=run.info.experiment_id,  # else the default experiment's
                nested=True,
                run_name=f"{contender.role} v{contender.version.version}",
                tags={"role": contender.role, "model_version": contender.version.version},
            ):
                probs = promotion.probabilities(contender.model, data.texts)
                results[contender.role] = promotion.evaluate(
                    probs, data, f"test reviews ({contender.role})"
                )
        decision = promotion.decide(
            request.name,
            request.metric,
            request.min_gain,
            request.force,
            results,
            candidate=candidate.version,
            champion=champion,
            data=data,
            run_id=run.info.run_id,
        )
        _record(request, decision)
    except BaseException as exc:  # the run ends as the promotion did; nothing more moves
        mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    mlflow.end_run()
    return decision


def _record(request: _Request, decision: Decision) -> None:
    """The decision on the promotion run and the candidate version; the alias moved."""
    import mlflow

    client = registry.client(request.uri)
    with tracking.server_errors("recording the decision"):
        mlflow.log_metrics(decision.run_metrics())
        mlflow.set_tags({**decision.version_tags(), "line": decision.line()})
        for key, value in decision.version_tags().items():
            client.set_model_version_tag(request.name, decision.candidate, key, value)
        if decision.promoted:
            registry.set_alias(
                request.name, registry.CHAMPION, decision.candidate, tracking_uri=request.uri
            )
