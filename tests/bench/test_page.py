"""bench/page.py end to end on a tiny archive: train, register, explain, serve, time."""

import re

import pytest

from tests.support.bench_runs import run_bench, tiny_archive


@pytest.mark.slow
def test_bench_page_times_the_page_and_the_explanation(tmp_path):
    archive = tiny_archive(tmp_path, per_label=40)
    options = ("--per-label", "30", "--tries", "4", "--explains", "3", "--words", "200")
    lines = run_bench("page.py", archive, *options, timeout=600)
    assert any(line.startswith("explained a 200-word review in ") for line in lines), lines
    assert "over 4" in lines[-2], lines[-2]
    found = re.fullmatch(r"page_p50_ms=([\d.]+) explain_ms=([\d.]+)", lines[-1])
    assert found, lines[-1]
    assert all(float(v) > 0 for v in found.groups())
