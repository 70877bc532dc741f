"""The prep notebook, executed for real with papermill: by the runner and by plain papermill."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import scrapbook as sb

from lib.core.paths import new_run_dir
from tests.support.datagen import add_special_entries, make_raw_dir, write_review
from tests.support.runner_process import error_traceback_shown

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, **kw):
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs")}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw
    )


def test_runner_prep_combines_two_folders(tmp_path):
    one = make_raw_dir(tmp_path / "aclImdb-set1", per_label=6, seed=1)
    two = make_raw_dir(tmp_path / "aclImdb-set2", per_label=6, seed=2, first_id=100)
    write_review(one, "train", 1, 999, 10, "What a <b>GREAT</b> movie!!! I'd see it again.")
    out, run_dir = tmp_path / "processed", tmp_path / "run"
    raw_dirs = json.dumps([str(one), str(two)])  # as Polyaxon passes it: one JSON string
    result = _run(
        [
            sys.executable,
            "-m",
            "runner",
            "prep",
            "-r",
            "raw_dirs",
            raw_dirs,
            "-p",
            "processed_dir",
            str(out),
            "--output-dir",
            str(run_dir),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"executed notebook: {run_dir / 'prep.ipynb'}" in result.stdout
    assert (run_dir / "prep.ipynb").is_file() and (run_dir / "prep.html").is_file()
    train = pq.read_table(out / "train.parquet").to_pylist()
    test = pq.read_table(out / "test.parquet").to_pylist()
    assert len(train) == 25 and len(test) == 24
    assert {r["source"] for r in train} == {str(one.resolve()), str(two.resolve())}
    assert sum(r["label"] for r in train) == 13
    assert all((r["label"] == 1) == (r["rating"] >= 7) for r in train + test)
    special = next(r for r in train if r["id"] == 999)
    assert special["text"] == "what great movie see it again" and special["rating"] == 10
    assert all("<br" not in r["text"] and r["text"] == r["text"].lower() for r in train)
    scraps = sb.read_notebook(str(run_dir / "prep.ipynb")).scraps
    assert scraps["rows"].data["train"] == {"total": 25, "pos": 13, "neg": 12}
    assert scraps["processed_dir"].data == str(out)
    html = (run_dir / "prep.html").read_text()
    assert "before and after cleaning" in html.lower()


def test_plain_papermill_runs_the_same_notebook(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    out = tmp_path / "processed"
    papermill = Path(sys.executable).with_name("papermill")
    result = _run(
        [
            str(papermill),
            "notebooks/prep.ipynb",
            str(tmp_path / "out.ipynb"),
            "-p",
            "processed_dir",
            str(out),
            "-y",
            f"raw_dirs: [{src}]",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out / "test.parquet").num_rows == 6


def test_plain_papermill_refuses_a_processed_dir_in_the_notebooks_folder(tmp_path):
    # The runner refuses it before any kernel (tests/runner/cli/test_main.py); the notebook, run
    # without the runner, makes the same check before it reads anything.
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    papermill = Path(sys.executable).with_name("papermill")
    args = ["-p", "processed_dir", "notebooks/processed", "-y", f"raw_dirs: [{src}]"]
    out = tmp_path / "out.ipynb"
    result = _run([str(papermill), "notebooks/prep.ipynb", str(out), *args], tmp_path)
    assert result.returncode != 0
    assert "ParameterError: processed_dir: notebooks/processed is inside the project's" in (
        result.stderr
    )
    assert not (ROOT / "notebooks" / "processed").exists()


def test_a_failing_prep_exits_non_zero_with_the_error_and_the_partial_notebook(tmp_path):
    run_dir = tmp_path / "run"
    missing = tmp_path / "no-such-dir"
    result = _run(
        [
            sys.executable,
            "-m",
            "runner",
            "prep",
            "-p",
            "raw_dirs",
            str(missing),
            "-p",
            "processed_dir",
            str(tmp_path / "out"),
            "--output-dir",
            str(run_dir),
        ],
        tmp_path,
    )
    assert result.returncode == 2  # bad input: one line, no traceback
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: prep stopped at cell ")
    assert f"DatasetError: raw data folder {missing} does not exist" in last
    assert last.endswith(f"(partial notebook: {run_dir / 'prep.ipynb'})")
    assert not error_traceback_shown(result.stderr)
    assert (run_dir / "prep.ipynb").is_file() and (run_dir / "prep.html").is_file()
    assert not (tmp_path / "out").exists()


def test_default_run_folders_are_named_by_utc_time_and_stage(tmp_path):
    first = new_run_dir("prep", base=tmp_path)
    second = new_run_dir("prep", base=tmp_path)
    assert first != second and first.name.endswith("Z-prep") and first.is_dir()
    assert second.name.startswith(first.name)


def test_secret_values_never_reach_the_output_notebook_or_html(tmp_path):
    secret = "Zq7-distinctive-Secret-9Xk"
    # The raw folder's name holds the secret, so the notebook prints it in several outputs.
    src = make_raw_dir(tmp_path / f"raw-{secret}", per_label=2)
    run_dir = tmp_path / "run"
    env_extra = {"DEMO_PASSWORD": secret}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "prep",
            "-p",
            "raw_dirs",
            str(src),
            "-p",
            "processed_dir",
            str(tmp_path / "out"),
            "--output-dir",
            str(run_dir),
        ],
        cwd=ROOT,
        env={**os.environ, **env_extra, "LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for path in [*run_dir.iterdir(), *(tmp_path / "logs").iterdir()]:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert secret not in text, path
    assert "raw-********" in (run_dir / "prep.ipynb").read_text()
    assert secret not in result.stdout + result.stderr


def test_a_secret_looking_parameter_is_refused(tmp_path):
    result = _run(
        [
            sys.executable,
            "-m",
            "runner",
            "prep",
            "-p",
            "mlflow_password",
            "x",
            "--output-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert result.returncode == 2
    assert "mlflow_password" in result.stderr and "environment" in result.stderr
    assert not (tmp_path / "run").exists()


def test_runner_prep_skips_and_counts_a_link_out_a_broken_link_and_a_fifo(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    (tmp_path / "hostname").write_text("my-host-name")  # as /etc/hostname
    add_special_entries(src, tmp_path / "hostname")
    out, run_dir = tmp_path / "processed", tmp_path / "run"
    args = ["-r", "raw_dirs", str(src), "-p", "processed_dir", str(out)]
    result = _run(
        [sys.executable, "-m", "runner", "prep", *args, "--output-dir", str(run_dir)], tmp_path
    )
    assert result.returncode == 0, result.stderr
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    for reason in ("link_outside_raw_dirs", "broken_link", "not_regular_file"):  # the FIFO
        assert skipped[reason]["count"] == 1, reason
    assert not any("host" in r["text"] for r in pq.read_table(out / "train.parquet").to_pylist())
    assert "link_outside_raw_dirs" in (run_dir / "prep.html").read_text()  # the skipped table


def test_runner_prep_into_a_read_only_processed_dir_is_one_line(tmp_path, read_only_dir):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    out = read_only_dir / "processed"
    args = ["-r", "raw_dirs", str(src), "-p", "processed_dir", str(out)]
    result = _run(
        [sys.executable, "-m", "runner", "prep", *args, "--output-dir", str(tmp_path / "run")],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"OutputError: processed_dir {out} cannot be written: the file system" in last
    assert not error_traceback_shown(result.stderr)
