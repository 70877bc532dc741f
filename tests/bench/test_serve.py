"""bench/serve.py end to end on a tiny archive: train, register, serve, time (one client,
then concurrent clients), compare."""

import re

import pytest

from tests.support.bench_runs import run_bench, tiny_archive


@pytest.mark.slow
def test_bench_serve_times_the_server_and_the_in_process_model(tmp_path):
    archive = tiny_archive(tmp_path, per_label=40, unsup="unlabelled: never taken")
    options = ("--per-label", "30", "--requests", "12", "--warmup", "2", "--batch", "10")
    options += ("--batches", "3", "--clients", "4", "--concurrent-s", "2")
    lines = run_bench("serve.py", archive, *options, timeout=600)
    assert any(
        line.startswith("trained and registered bench-serve version 1 on 60 ") for line in lines
    )
    assert (
        "over 12; 10 a request: " in lines[-3] and "(predict_on_batch; model.predict: " in lines[-3]
    ), lines[-3]
    assert lines[-2].startswith("4 clients for 2 s: 10 a request "), lines[-2]
    found = re.fullmatch(
        r"p50_ms=([\d.]+) p99_ms=([\d.]+) batch_reviews_per_s=(\d+) inprocess_reviews_per_s=(\d+)"
        r" concurrent_p50_ms=([\d.]+) concurrent_p99_ms=([\d.]+) concurrent_reviews_per_s=(\d+)",
        lines[-1],
    )
    assert found, lines[-1]
    p50, p99, batch, inprocess, c50, c99, concurrent = map(float, found.groups())
    assert 0 < p50 <= p99 and batch > 0 and inprocess > 0
    assert 0 < c50 <= c99 and concurrent > 0
