"""bench/infer.py end to end on a tiny archive: train, `runner infer` on a folder and on
Parquet files, the in-process baseline, memory of the kernel's tree."""

import math
import re

import pytest

from tests.support.bench_runs import run_bench, tiny_archive

FIGURES = (
    "startup_s",
    "folder_reviews_per_s",
    "parquet_reviews_per_s",
    "inprocess_reviews_per_s",
    "peak_rss_mib_1x",
    "peak_rss_mib_20x",
)


@pytest.mark.slow
def test_bench_infer_scores_the_test_split_through_the_runner_and_in_process(tmp_path):
    archive = tiny_archive(tmp_path, per_label=40, unsup="unlabelled: never taken")
    options = ("--scale", "3", "--repeat", "1", "--batch-size", "16")
    lines = run_bench("infer.py", archive, *options, timeout=900)
    assert any(line.endswith("; 80 test reviews") for line in lines), lines
    # Each run's line; the bench itself checked every output's rows and probabilities.
    for prefix in (
        "in process, predict_on_batch by 16: ",
        "runner infer, startup: ",
        "runner infer, folder: ",
        "runner infer, parquet: ",
        "runner infer, Parquet x3 (240 reviews): ",
    ):
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    pattern = " ".join(f"{name}=([^ ]+)" for name in FIGURES)
    found = re.fullmatch(pattern, lines[-1])
    assert found, lines[-1]
    figures = dict(zip(FIGURES, map(float, found.groups()), strict=True))
    assert all(math.isfinite(v) and v > 0 for v in figures.values()), figures
    # The kernel's tree holds TensorFlow and the model: far more than an empty process.
    assert figures["peak_rss_mib_1x"] > 100 and figures["peak_rss_mib_20x"] > 100, figures
