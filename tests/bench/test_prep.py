import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_prep_times_both_on_the_same_reviews(tmp_path):
    raw_dir = make_raw_dir(tmp_path / "aclImdb", per_label=5)
    (raw_dir / "train" / "unsup").mkdir()
    (raw_dir / "train" / "unsup" / "0_0.txt").write_text("unlabelled: left out of both")
    (raw_dir / "imdbEr.txt").write_text("0.1\n")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_dir, arcname="aclImdb")
    result = subprocess.run(
        [sys.executable, "bench/prep.py", str(archive), "--repeat", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("(a) ") for line in lines) == 2
    assert sum(line.endswith("s for 20 files") for line in lines) == 2  # the reference too
    assert re.fullmatch(
        r"prep_s=[\d.]+ reference_s=[\d.]+ speedup=[\d.]+ peak_rss_mib=\d+", lines[-1]
    ), lines[-1]
