"""lib.inference.reporting: the progress sent while scoring, the summary, the plots and what
an MLflow run (a real local store) records of a pass."""

from __future__ import annotations

import json
import logging

import mlflow

from lib.inference import reporting
from lib.inference.batch import BatchResult
from lib.tracking import runs


def _labelled() -> BatchResult:
    result = BatchResult(reviews=10, positive=5, seconds=2.0, fingerprint="sha256:abc")
    result.histogram = [1] * 5 + [0] * 10 + [1] * 5
    result.skipped["empty"] = 2
    result.skipped_examples = {"empty": ["a.txt", "b.txt"]}
    result.confusion_matrix = [[4, 1], [1, 4]]
    result.accuracy, result.auc = 0.8, 0.9
    return result


def test_chunks_are_a_multiple_of_the_batch_size_so_calls_keep_one_size():
    assert reporting.chunk_size(1024) == 4096
    assert reporting.chunk_size(1000) == 4000
    assert reporting.chunk_size(5000) == 5000  # a batch larger than the default: one a chunk
    assert reporting.chunk_size(1) == 4096


def test_progress_is_sent_at_most_every_few_seconds_and_at_the_end(caplog):
    report = reporting.progress_reporter(every_s=3600)
    with caplog.at_level(logging.INFO, logger="lib.core.progress"):
        for done in (100, 200, 300):
            report(done, 300, done / 100)
        unknown = reporting.progress_reporter(every_s=3600)
        unknown(100, None, 1.0)
        unknown(200, None, 2.0)  # no total: no end to show
        every = reporting.progress_reporter(every_s=0)
        every(1, 3, 1.0)
        every(2, 3, 2.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "reviews 100/300 (33%), 100 a second, 2 s left",
        "reviews 300/300 (100%), 100 a second, 0 s left",
        "reviews 100, 100 a second",
        "reviews 1/3 (33%), 1 a second, 2 s left",
        "reviews 2/3 (67%), 1 a second, 1 s left",
    ]


def test_the_summary_holds_counts_skips_speed_fingerprint_and_metrics():
    figures = reporting.summary(_labelled(), truncated=3)
    assert figures["reviews"] == 10 and figures["skipped"] == 2
    assert figures["skipped_empty"] == 2 and figures["skipped_examples"] == {
        "empty": ["a.txt", "b.txt"]
    }
    assert figures["positive_share"] == 0.5 and figures["reviews_per_s"] == 5.0
    assert figures["truncated"] == 3 and figures["input_fingerprint"] == "sha256:abc"
    assert figures["accuracy"] == 0.8 and figures["confusion_matrix"] == [[4, 1], [1, 4]]
    metrics = reporting.logged_metrics(figures)
    assert metrics["true_negatives"] == 4 and metrics["false_positives"] == 1
    assert "input_fingerprint" not in metrics and "skipped_examples" not in metrics
    assert "threshold" not in metrics  # a parameter of the run
    unlabelled = reporting.summary(BatchResult(reviews=3, positive=1))
    assert "accuracy" not in unlabelled and "confusion_matrix" not in unlabelled


def test_the_plots_are_the_histogram_and_with_labels_the_matrix(tmp_path):
    made = reporting.plots(_labelled(), tmp_path)
    assert [p.file.name for p in made] == ["probability_histogram.png", "confusion_matrix.png"]
    assert all(p.file.stat().st_size > 1000 for p in made)
    assert made[0].output.alt.startswith("Histogram of the probability of positive for 10")
    assert "5 below 0.5, 5 at 0.5 or above" in made[0].output.alt
    assert made[1].output.alt.startswith("Confusion matrix: of 5 negative reviews")
    unlabelled = BatchResult(reviews=3, positive=1, histogram=[3] + [0] * 19)
    assert [p.file.name for p in reporting.plots(unlabelled, tmp_path / "u")] == [
        "probability_histogram.png"
    ]


def test_the_run_records_metrics_the_fingerprint_the_summary_and_the_plots(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = runs.start_run(tracking_uri=store, experiment_name="batch-inference")
    try:
        figures = reporting.summary(_labelled(), truncated=1)
        reporting.log_run(figures, reporting.plots(_labelled(), tmp_path / "plots"))
    finally:
        mlflow.end_run()
    client = mlflow.MlflowClient(store)
    logged = client.get_run(run.info.run_id).data
    assert logged.params["input_fingerprint"] == "sha256:abc"
    assert logged.metrics["reviews"] == 10 and logged.metrics["auc"] == 0.9
    assert logged.metrics["true_positives"] == 4 and logged.metrics["truncated"] == 1
    files = {
        a.path
        for folder in ("plots", "results")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert files == {
        "plots/probability_histogram.png",
        "plots/confusion_matrix.png",
        "results/summary.json",
    }
    local = client.download_artifacts(run.info.run_id, "results/summary.json", str(tmp_path))
    with open(local, encoding="utf-8") as f:
        assert json.load(f)["skipped_examples"] == {"empty": ["a.txt", "b.txt"]}
