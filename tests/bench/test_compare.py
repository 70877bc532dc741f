"""bench/compare.py end to end on a tiny archive: two train runs differing in bs, compared
through the runner; its last line holds the figures."""

import math
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("compare_s", "notebook_s", "artifacts_mib")


@pytest.mark.slow
def test_bench_compare_trains_two_runs_and_compares_them(tmp_path):
    raw_dir = make_raw_dir(tmp_path / "aclImdb", per_label=30, words=30)
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_dir, arcname="aclImdb")
    result = subprocess.run(
        [sys.executable, "bench/compare.py", str(archive), "--per-label", "20", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("two train runs of 80 reviews: "), lines
    assert lines[1].startswith("compare 1: ") and lines[1].endswith("changed parameters ['bs']")
    found = re.fullmatch(" ".join(f"{name}=([^ ]+)" for name in FIGURES), lines[-1])
    assert found, lines[-1]
    figures = dict(zip(FIGURES, map(float, found.groups()), strict=True))
    assert all(math.isfinite(v) and v > 0 for v in figures.values()), figures
    assert figures["compare_s"] > figures["notebook_s"]  # the command holds the notebook
