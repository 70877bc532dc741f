"""bench/serve.py end to end on a tiny archive: train, register, serve, time (one client,
then concurrent clients), compare."""

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_serve_times_the_server_and_the_in_process_model(tmp_path):
    raw_dir = make_raw_dir(tmp_path / "aclImdb", per_label=40, words=30)
    (raw_dir / "train" / "unsup").mkdir()
    (raw_dir / "train" / "unsup" / "0_0.txt").write_text("unlabelled: never taken")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_dir, arcname="aclImdb")
    result = subprocess.run(
        [
            sys.executable,
            "bench/serve.py",
            str(archive),
            *("--per-label", "30", "--requests", "12", "--warmup", "2"),
            *("--batch", "10", "--batches", "3", "--clients", "4", "--concurrent-s", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
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
