"""bench/page.py end to end on a tiny archive: train, register, explain, serve, time."""

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_page_times_the_page_and_the_explanation(tmp_path):
    raw_dir = make_raw_dir(tmp_path / "aclImdb", per_label=40, words=30)
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_dir, arcname="aclImdb")
    result = subprocess.run(
        [
            sys.executable,
            "bench/page.py",
            str(archive),
            *("--per-label", "30", "--tries", "4", "--explains", "3", "--words", "200"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("explained a 200-word review in ") for line in lines), lines
    assert "over 4" in lines[-2], lines[-2]
    found = re.fullmatch(r"page_p50_ms=([\d.]+) explain_ms=([\d.]+)", lines[-1])
    assert found, lines[-1]
    assert all(float(v) > 0 for v in found.groups())
