"""Promoting a registered model version to ``champion``, only on a measured gain.

The candidate and the current champion are scored on the same held-out test reviews (the
test split of a processed data set, the one the train notebook evaluates on) by MLflow's
classifier evaluator (``mlflow.models.evaluate``, each in a child run of the promotion's
run). That evaluator wants labels, so it gets each model's P(positive) thresholded at 0.5;
it computes AUC and log loss only from a scikit-learn-like model's ``predict_proba``, so the
probabilities go beside the labels and two extra metrics compute those two as the train
notebook does (:func:`lib.model.evaluation.binary_metrics`). MLflow's
``validate_evaluation_results`` then decides whether the candidate beats the champion by
``min_gain`` (``MetricThreshold.min_absolute_change``; a ``min_gain`` of 0 asks for at least
the champion's score).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lib.core.errors import DatasetError, ModelError, ParameterError, first_line
from lib.data import datasets, prep
from lib.model.evaluation import LABEL_NAMES, binary_metrics
from lib.tracking.model_requirements import stand_ins_accepted

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import EvaluationResult

EXPERIMENT = "model-promotion"
THRESHOLD = 0.5  # P(positive) at or above it: a positive label, as in the train notebook
TAG_PREFIX = "promotion_"


@dataclass(frozen=True)
class Metric:
    """A metric a promotion compares on: its name as shown (the train runs' name), its key
    in MLflow's evaluation results, and its direction."""

    name: str
    key: str
    greater_is_better: bool


METRICS = (
    Metric("test_accuracy", "accuracy_score", True),
    Metric("test_precision", "precision_score", True),
    Metric("test_recall", "recall_score", True),
    Metric("test_f1", "f1_score", True),
    Metric("test_auc", "roc_auc", True),
    Metric("test_loss", "log_loss", False),
)


def check_metric(value: str) -> Metric:
    """The metric ``value`` names: ``test_accuracy``, ``accuracy`` or ``accuracy_score``,
    and so for precision, recall, f1, auc (``roc_auc``) and loss (``log_loss``)."""
    text = str(value).strip().lower()
    for metric in METRICS:
        short = metric.name.removeprefix("test_")
        if text in (metric.name, short, metric.key, f"test_{metric.key}"):
            return metric
    names = ", ".join(m.name for m in METRICS)
    raise ParameterError(
        "--metric", f"unknown metric {value!r}: use one of {names} (test_loss: lower is better)"
    )


def check_min_gain(value: float) -> float:
    """``value`` if it is a finite number >= 0."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ParameterError(
            "--min-gain", f"{value!r} is not allowed: a number >= 0, e.g. 0.002 (0: at least equal)"
        )
    return float(value)


@dataclass
class HeldOutReviews:
    """The reviews both models are scored on, and where they come from."""

    path: str
    texts: np.ndarray
    labels: np.ndarray
    fingerprint: str


def load_test_data(option: str, data_path: str) -> HeldOutReviews:
    """The test split of the processed data set at ``data_path``; ParameterError naming
    ``option`` when it is not one (no such folder, not prep's files or manifest)."""
    path = datasets.check_data_path(option, data_path)
    try:
        manifest = prep.read_manifest(path)
    except (OSError, ValueError):  # unreadable, or not JSON
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != prep.FORMAT:
        raise ParameterError(
            option,
            f"{path} is not a processed data set (its manifest.json is not one that prep "
            "wrote): give the processed_dir that prep wrote",
        )
    try:
        test = datasets.load_test(path)  # a file cut short or unreadable: its own line
    except DatasetError as exc:
        raise ParameterError(option, str(exc)) from None
    except KeyError as exc:  # a Parquet file without prep's columns
        raise ParameterError(
            option,
            f"{path}/test.parquet lacks the column {first_line(exc)}: prepare the data set "
            "again with `python -m runner prep`",
        ) from None
    counts = test.counts()
    if min(counts["pos"], counts["neg"]) < 1:
        raise ParameterError(
            option,
            f"{path} has {counts['pos']} positive and {counts['neg']} negative test reviews: "
            "scoring needs both; give a data set prepared from both kinds",
        )
    return HeldOutReviews(str(path), test.texts, test.labels, str(manifest.get("fingerprint", "")))


def model_uri(name: str, version: ModelVersion) -> str:
    return f"models:/{name}/{version.version}"


def load_version(
    name: str, version: ModelVersion, fix: str = "promote a version that the train stage logged"
):
    """The version's pyfunc model; ModelError, ending with ``fix``, when it cannot be loaded."""
    import mlflow.pyfunc

    try:
        with stand_ins_accepted():  # it records the serving image's packages
            return mlflow.pyfunc.load_model(model_uri(name, version))
    except Exception as exc:  # noqa: BLE001  (MLflow, the artifact store, the model's code)
        raise ModelError(
            f"{name} v{version.version} cannot be loaded ({type(exc).__name__}: "
            f"{first_line(exc)[:200]}): {fix}"
        ) from None


def check_signatures(name: str, candidate: ModelVersion, model, champion: ModelVersion, base):
    """ModelError unless the candidate's model signature is the champion's: whoever calls
    the champion relies on its inputs and outputs."""
    mine, theirs = model.metadata.signature, base.metadata.signature
    if _signature_dict(mine) == _signature_dict(theirs):
        return
    raise ModelError(
        f"{name} v{candidate.version}'s signature ({_shown(mine)}) differs from champion "
        f"v{champion.version}'s ({_shown(theirs)}): a champion's callers rely on its inputs "
        "and outputs; register the candidate under another --model-name, or log it as the "
        "train stage does"
    )


def _signature_dict(signature) -> dict[str, Any] | None:
    return None if signature is None else signature.to_dict()


def _shown(signature) -> str:
    if signature is None:
        return "none"
    return f"inputs {signature.inputs}, outputs {signature.outputs}"


def probabilities(model, texts: np.ndarray) -> np.ndarray:
    """The pyfunc model's P(positive) for each review, as float64."""
    out = np.asarray(model.predict(list(texts)), dtype=np.float64)
    return out.reshape(len(texts), -1)[:, -1]


def evaluate(probs: np.ndarray, data: HeldOutReviews, name: str) -> EvaluationResult:
    """MLflow's classifier evaluation of the thresholded ``probs`` (and AUC, log loss from
    them) against the test labels, logged to the active run with ``data`` as its input."""
    import mlflow
    import pandas as pd

    # Labels as names: MLflow takes integer labels for a regression's, and warns.
    names = np.asarray(LABEL_NAMES, dtype=object)
    frame = pd.DataFrame(
        {
            "label": names[np.asarray(data.labels, dtype=np.int64)],
            "prediction": names[(probs >= THRESHOLD).astype(np.int64)],
            "probability": probs,
        }
    )
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source twice and warns about every local path.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interp")
        dataset = mlflow.data.from_pandas(
            frame, source=data.path, targets="label", predictions="prediction", name=name
        )
    return mlflow.models.evaluate(
        data=dataset,
        model_type="classifier",
        evaluators=["classifier"],
        evaluator_config={
            "classifier": {"pos_label": LABEL_NAMES[1], "label_list": list(LABEL_NAMES)}
        },
        extra_metrics=_probability_metrics(),
    )


def _probability_metrics() -> list:
    """AUC and log loss from the ``probability`` column, as the train notebook computes them."""
    from mlflow.metrics import MetricValue, make_metric

    def scores(targets, probability) -> dict[str, float]:
        positive = (np.asarray(targets) == LABEL_NAMES[1]).astype(np.int64)
        return binary_metrics(positive, np.asarray(probability), "auc")

    # MLflow passes each parameter the column of its name; a two-parameter function whose
    # second is not ``targets`` gets MLflow's old call (eval_df, builtin_metrics) instead.
    def roc_auc(probability, targets):
        return MetricValue(aggregate_results={"roc_auc": scores(targets, probability)["auc"]})

    def log_loss(probability, targets):
        return MetricValue(aggregate_results={"log_loss": scores(targets, probability)["loss"]})

    return [
        make_metric(eval_fn=roc_auc, greater_is_better=True, name="roc_auc"),
        make_metric(eval_fn=log_loss, greater_is_better=False, name="log_loss"),
    ]


def beats(
    metric: Metric, min_gain: float, candidate: EvaluationResult, champion: EvaluationResult
) -> bool:
    """Whether MLflow's validation finds the candidate better than the champion by at least
    ``min_gain`` on ``metric``."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    if min_gain > 0:
        threshold = MetricThreshold(
            min_absolute_change=min_gain, greater_is_better=metric.greater_is_better
        )
        baseline = champion
    else:  # MLflow wants a positive change: "at least as good" is a threshold
        threshold = MetricThreshold(
            threshold=float(champion.metrics[metric.key]),
            greater_is_better=metric.greater_is_better,
        )
        baseline = None
    try:
        mlflow.validate_evaluation_results({metric.key: threshold}, candidate, baseline)
    except ModelValidationFailedException:
        return False
    return True


@dataclass
class Decision:
    """What a promotion found and did."""

    model_name: str
    metric: Metric
    min_gain: float
    candidate: str  # version
    candidate_score: float
    champion: str | None  # the champion's version before, None when there was none
    champion_score: float | None
    passed: bool  # beat the champion by min_gain (True when there was none to beat)
    forced: bool
    data: HeldOutReviews
    run_id: str = ""

    @property
    def promoted(self) -> bool:
        return self.passed or self.forced

    @property
    def margin(self) -> float | None:
        """The candidate's gain over the champion in the metric's better direction."""
        if self.champion_score is None:
            return None
        diff = self.candidate_score - self.champion_score
        return diff if self.metric.greater_is_better else -diff

    def line(self) -> str:
        """The decision in one line."""
        name, metric = self.model_name, self.metric.name
        forced = " (forced)" if self.forced else ""
        if self.champion is None:
            return (
                f"promoted {name} v{self.candidate} to champion{forced}: {metric} "
                f"{self.candidate_score:.4f}, no champion before"
            )
        if self.champion_score is None:  # forced past a champion that cannot be loaded
            return (
                f"promoted {name} v{self.candidate} to champion{forced}: {metric} "
                f"{self.candidate_score:.4f}, champion v{self.champion} could not be scored"
            )
        comparison = (
            f"{metric} {self.candidate_score:.4f} vs {self.champion_score:.4f} "
            f"(v{self.champion}), {self.margin:+.4f} {'>=' if self.passed else '<'} "
            f"{self.min_gain:g}"
        )
        if self.promoted:
            return f"promoted {name} v{self.candidate} to champion{forced}: {comparison}"
        return f"kept {name} v{self.champion} as champion over v{self.candidate}: {comparison}"

    def version_tags(self) -> dict[str, str]:
        """The tags the candidate version gets (every key, so none is left from before)."""
        return {
            f"{TAG_PREFIX}{key}": value
            for key, value in {
                "decision": "promoted" if self.promoted else "kept",
                "metric": self.metric.name,
                "candidate_score": repr(self.candidate_score),
                "champion_score": _text(self.champion_score),
                "champion_version": self.champion or "none",
                "margin": _text(self.margin),
                "min_gain": repr(self.min_gain),
                "forced": str(self.forced).lower(),
                "data_path": self.data.path,
                "data_fingerprint": self.data.fingerprint,
                "run_id": self.run_id,
            }.items()
        }

    def run_metrics(self) -> dict[str, float]:
        """The promotion run's metrics: both scores and the margin."""
        metrics = {"candidate_score": self.candidate_score}
        if self.champion_score is not None:
            metrics |= {"champion_score": self.champion_score, "margin": self.margin}
        return metrics


def _text(value: float | None) -> str:
    return "none" if value is None else repr(float(value))


def run_params(
    name: str,
    candidate: str,
    champion: str | None,
    metric: Metric,
    min_gain: float,
    force: bool,
    data: HeldOutReviews,
) -> dict[str, str]:
    """The promotion run's parameters."""
    return {
        "model_name": name,
        "candidate_version": candidate,
        "champion_version": champion or "none",
        "metric": metric.name,
        "min_gain": repr(min_gain),
        "force": str(force).lower(),
        "data_path": data.path,
        "data_fingerprint": data.fingerprint,
    }


def decide(
    name: str,
    metric: Metric,
    min_gain: float,
    force: bool,
    results: dict[str, EvaluationResult],
    *,
    candidate: str,
    champion: str | None,
    data: HeldOutReviews,
    run_id: str,
) -> Decision:
    """The decision from the evaluations, ``results`` by role (candidate, and champion
    when there is one)."""
    scores = {role: float(result.metrics[metric.key]) for role, result in results.items()}
    return Decision(
        model_name=name,
        metric=metric,
        min_gain=min_gain,
        candidate=candidate,
        candidate_score=scores["candidate"],
        champion=champion,
        champion_score=scores.get("champion"),
        passed=champion is None
        or (
            "champion" in results  # else forced past a champion that cannot be loaded
            and beats(metric, min_gain, results["candidate"], results["champion"])
        ),
        forced=force,
        data=data,
        run_id=run_id,
    )
