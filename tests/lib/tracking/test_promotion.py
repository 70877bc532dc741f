"""lib.tracking.promotion without models: the metrics and their direction, MLflow's evaluation and
validation of given probabilities, the test data's checks, and the decision's line and tags.
The promotions themselves (registered models, the alias, the runs) are in
tests/runner/cli/test_promote.py."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lib.core.errors import ParameterError
from lib.data import prep
from lib.model.evaluation import binary_metrics
from lib.tracking import promotion
from lib.tracking import runs as tracking
from tests.support.datagen import make_raw_dir


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("promotion-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=12)], root / "processed")
    return root / "processed"


@pytest.mark.parametrize(
    ("given", "name", "key", "greater"),
    [
        ("test_accuracy", "test_accuracy", "accuracy_score", True),
        ("accuracy", "test_accuracy", "accuracy_score", True),
        ("Accuracy_Score", "test_accuracy", "accuracy_score", True),
        ("f1", "test_f1", "f1_score", True),
        ("test_precision", "test_precision", "precision_score", True),
        ("recall_score", "test_recall", "recall_score", True),
        ("auc", "test_auc", "roc_auc", True),
        ("roc_auc", "test_auc", "roc_auc", True),
        ("loss", "test_loss", "log_loss", False),
        ("log_loss", "test_loss", "log_loss", False),
        ("test_loss", "test_loss", "log_loss", False),
    ],
)
def test_metric_names_and_their_direction(given, name, key, greater):
    assert promotion.check_metric(given) == promotion.Metric(name, key, greater)


@pytest.mark.parametrize("given", ["bleu", "val_accuracy", ""])
def test_an_unknown_metric_is_one_line_naming_the_known_ones(given):
    with pytest.raises(ParameterError) as error:
        promotion.check_metric(given)
    assert str(error.value).startswith(f"--metric: unknown metric {given!r}: use one of ")
    assert "test_accuracy" in str(error.value) and "test_loss: lower is better" in str(error.value)


@pytest.mark.parametrize("given", [-0.001, float("nan"), float("inf")])
def test_min_gain_is_a_finite_number_at_least_zero(given):
    with pytest.raises(ParameterError, match="--min-gain: .* a number >= 0"):
        promotion.check_min_gain(given)
    assert promotion.check_min_gain(0) == 0.0


def test_test_data_is_the_processed_test_split_with_its_fingerprint(processed):
    data = promotion.load_test_data("--data", str(processed))
    assert data.path == str(processed) and len(data.texts) == len(data.labels) == 24
    assert sorted(np.bincount(data.labels)) == [12, 12]
    assert data.fingerprint == prep.read_manifest(processed)["fingerprint"]
    assert data.fingerprint.startswith("sha256:")


def test_what_is_not_a_processed_data_set_is_one_line_naming_the_option(tmp_path, processed):
    with pytest.raises(ParameterError, match=r"^--data: .*missing does not exist"):
        promotion.load_test_data("--data", str(tmp_path / "missing"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ParameterError, match="is not a processed data set"):
        promotion.load_test_data("--data", str(tmp_path / "notes"))
    # prep's file names around another manifest: not prep's data set either
    fake = tmp_path / "fake"
    fake.mkdir()
    for name in ("train.parquet", "test.parquet"):
        (fake / name).write_bytes((processed / name).read_bytes())
    (fake / prep.MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ParameterError, match="its manifest.json is not one that prep wrote"):
        promotion.load_test_data("the run's data_path", str(fake))
    (fake / prep.MANIFEST).write_text("{not json")
    with pytest.raises(ParameterError, match="^the run's data_path: .*is not a processed"):
        promotion.load_test_data("the run's data_path", str(fake))
    (fake / prep.MANIFEST).write_text((processed / prep.MANIFEST).read_text())
    (fake / "test.parquet").write_bytes(b"not parquet")
    unreadable = r"^--data: processed data file .*test.parquet cannot be read .*re-run prep"
    with pytest.raises(ParameterError, match=unreadable):
        promotion.load_test_data("--data", str(fake))


def test_mlflow_evaluates_thresholded_probabilities_and_validates_the_gain(
    tmp_path, processed, monkeypatch
):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracking.setup_experiment("promotion-tests")  # artifacts under tmp_path
    data = promotion.load_test_data("--data", str(processed))
    rng = np.random.default_rng(0)
    sharp = np.where(data.labels == 1, 0.9, 0.1)
    sharp[:3] = 1 - sharp[:3]  # 3 of 24 wrong
    blurred = np.clip(sharp + rng.normal(0, 0.3, len(sharp)), 0.01, 0.99)
    results = {}
    with mlflow.start_run(experiment_id=experiment):
        for name, probs in (("sharp", sharp), ("blurred", blurred)):
            with mlflow.start_run(experiment_id=experiment, nested=True):
                results[name] = promotion.evaluate(probs, data, name)
    for name, probs in (("sharp", sharp), ("blurred", blurred)):
        metrics, ours = results[name].metrics, binary_metrics(data.labels, probs, "auc")
        assert metrics["accuracy_score"] == pytest.approx(ours["accuracy"])
        assert metrics["roc_auc"] == pytest.approx(ours["auc"])
        assert metrics["log_loss"] == pytest.approx(ours["loss"])
        assert metrics["example_count"] == 24
    assert results["sharp"].metrics["accuracy_score"] == pytest.approx(21 / 24)
    accuracy, loss = promotion.check_metric("accuracy"), promotion.check_metric("loss")
    gap = results["sharp"].metrics["accuracy_score"] - results["blurred"].metrics["accuracy_score"]
    assert gap > 0  # the noise flips some labels
    assert promotion.beats(accuracy, gap - 1e-9, results["sharp"], results["blurred"])
    assert not promotion.beats(accuracy, gap + 1e-6, results["sharp"], results["blurred"])
    assert not promotion.beats(accuracy, 0.002, results["blurred"], results["sharp"])
    assert promotion.beats(accuracy, 0, results["sharp"], results["sharp"])  # 0: at least equal
    assert promotion.beats(loss, 0.002, results["sharp"], results["blurred"])  # lower is better
    assert not promotion.beats(loss, 0.002, results["blurred"], results["sharp"])


def _decision(**changes) -> promotion.Decision:
    data = promotion.HeldOutReviews("/data/processed", np.array([]), np.array([]), "sha256:ab")
    fields = {
        "model_name": "imdb-sentiment",
        "metric": promotion.check_metric("accuracy"),
        "min_gain": 0.002,
        "candidate": "3",
        "candidate_score": 0.8712,
        "champion": "2",
        "champion_score": 0.865,
        "passed": True,
        "forced": False,
        "data": data,
        "run_id": "r1",
    }
    return promotion.Decision(**(fields | changes))


def test_the_decision_line_says_what_moved_both_scores_and_the_margin():
    assert _decision().line() == (
        "promoted imdb-sentiment v3 to champion: test_accuracy 0.8712 vs 0.8650 (v2), "
        "+0.0062 >= 0.002"
    )
    kept = _decision(candidate_score=0.86, passed=False)
    assert kept.line() == (
        "kept imdb-sentiment v2 as champion over v3: test_accuracy 0.8600 vs 0.8650 (v2), "
        "-0.0050 < 0.002"
    )
    forced = _decision(candidate_score=0.86, passed=False, forced=True)
    assert forced.promoted and forced.line().startswith(
        "promoted imdb-sentiment v3 to champion (forced): test_accuracy 0.8600 vs 0.8650"
    )
    first = _decision(champion=None, champion_score=None)
    assert first.line() == (
        "promoted imdb-sentiment v3 to champion: test_accuracy 0.8712, no champion before"
    )
    loss = _decision(
        metric=promotion.check_metric("loss"), candidate_score=0.3, champion_score=0.32
    )
    assert loss.margin == pytest.approx(0.02)  # lower is better: the gain is positive
    assert "test_loss 0.3000 vs 0.3200 (v2), +0.0200 >= 0.002" in loss.line()


def test_the_candidate_version_gets_every_promotion_tag():
    tags = _decision(candidate_score=0.86, passed=False).version_tags()
    assert tags == {
        "promotion_decision": "kept",
        "promotion_metric": "test_accuracy",
        "promotion_candidate_score": "0.86",
        "promotion_champion_score": "0.865",
        "promotion_champion_version": "2",
        "promotion_margin": repr(0.86 - 0.865),
        "promotion_min_gain": "0.002",
        "promotion_forced": "false",
        "promotion_data_path": "/data/processed",
        "promotion_data_fingerprint": "sha256:ab",
        "promotion_run_id": "r1",
    }
    first = _decision(champion=None, champion_score=None, forced=True).version_tags()
    assert first["promotion_champion_score"] == first["promotion_margin"] == "none"
    assert first["promotion_champion_version"] == "none"
    assert (first["promotion_decision"], first["promotion_forced"]) == ("promoted", "true")
