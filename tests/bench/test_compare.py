"""bench/compare.py end to end on a tiny archive: two train runs differing in bs, compared
through the runner; its last line holds the figures."""

import math
import re

import pytest

from tests.support.bench_runs import run_bench, tiny_archive

FIGURES = ("compare_s", "notebook_s", "artifacts_mib")


@pytest.mark.slow
def test_bench_compare_trains_two_runs_and_compares_them(tmp_path):
    archive = tiny_archive(tmp_path, per_label=30)
    lines = run_bench("compare.py", archive, "--per-label", "20", "--repeat", "1", timeout=900)
    assert lines[0].startswith("two train runs of 80 reviews: "), lines
    assert lines[1].startswith("compare 1: ") and lines[1].endswith("changed parameters ['bs']")
    found = re.fullmatch(" ".join(f"{name}=([^ ]+)" for name in FIGURES), lines[-1])
    assert found, lines[-1]
    figures = dict(zip(FIGURES, map(float, found.groups()), strict=True))
    assert all(math.isfinite(v) and v > 0 for v in figures.values()), figures
    assert figures["compare_s"] > figures["notebook_s"]  # the command holds the notebook
