"""What the tests of the bench scripts share: a tiny aclImdb archive of generated reviews,
and a bench script run to its end."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from tests.support.datagen import make_raw_dir

ROOT = Path(__file__).resolve().parents[2]


def tiny_archive(tmp_path: Path, per_label: int, words: int = 30, unsup: str | None = None) -> Path:
    """``tmp_path``/tiny.tar.gz: an aclImdb folder of ``per_label`` generated reviews of
    ``words`` words per split and label, with one unlabelled review (``unsup``, its text)
    when given."""
    raw_dir = make_raw_dir(tmp_path / "aclImdb", per_label=per_label, words=words)
    if unsup is not None:
        (raw_dir / "train" / "unsup").mkdir()
        (raw_dir / "train" / "unsup" / "0_0.txt").write_text(unsup)
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_dir, arcname="aclImdb")
    return archive


def run_bench(script: str, archive: Path, *args: str, timeout: float) -> list[str]:
    """``bench/SCRIPT ARCHIVE ARGS`` run from the project root: its output's lines, once it
    has ended well (the test fails with its output's tail otherwise)."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", str(archive), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout.strip().splitlines()
