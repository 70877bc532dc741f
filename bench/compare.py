"""Benchmark: ``python -m runner compare`` on two small train runs that differ in one parameter.

Usage: python bench/compare.py ../shared/data/aclImdb_v1.tar.gz [--per-label 500] [--repeat 3]

Takes ``--per-label`` reviews of each label and split from the archive, prepares them through
lib, trains two one-epoch runs (batch size 32 and 64) tracked in a throwaway local MLflow
store, then compares them ``--repeat`` times through the runner (kernel start included).
Last line: ``compare_s=... notebook_s=... artifacts_mib=...`` (medians: the whole command, the
notebook's execution as the runner reports it, the artifacts it downloaded).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract_subset(archive: Path, dest: Path, per_label: int) -> Path:
    """The first ``per_label`` reviews of each of train/test x pos/neg, as an aclImdb folder."""
    taken: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] not in ("train", "test"):
                continue
            folder = "/".join(parts[1:3])
            if parts[2] not in ("pos", "neg") or taken.get(folder, 0) >= per_label:
                continue
            taken[folder] = taken.get(folder, 0) + 1
            tar.extract(member, dest, filter="data")
            if len(taken) == 4 and min(taken.values()) >= per_label:
                break
    return dest / "aclImdb"


def runner(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"runner {args[0]} failed:\n{done.stderr[-3000:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--per-label", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from lib.data.prep import prepare

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        tmp = Path(tmp)
        processed = tmp / "processed"
        prepare([extract_subset(args.archive, tmp, args.per_label)], processed)
        env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("MLFLOW_TRACKING_URI", None)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        ids = []
        for bs in (32, 64):
            done = runner(
                ["train", "-p", "data_path", str(processed), "-p", "epochs", "1",
                 "-p", "bs", str(bs), "-p", "model_dir", str(tmp / f"model-{bs}"),
                 "-p", "mlflow_tracking_uri", store, "--output-dir", str(tmp / f"train-{bs}")],
                env,
            )  # fmt: skip
            ids.append(re.search(r"^mlflow_run_id: (\w+)$", done.stdout, re.M)[1])
        print(f"two train runs of {4 * args.per_label} reviews: {ids[0]} (bs 32), {ids[1]} (bs 64)")
        totals, notebooks, mib = [], [], []
        for i in range(args.repeat):
            started = time.perf_counter()
            done = runner(
                ["compare", ids[1], ids[0], "-p", "mlflow_tracking_uri", store,
                 "--output-dir", str(tmp / f"compare-{i}")],
                env,
            )  # fmt: skip
            totals.append(time.perf_counter() - started)
            notebooks.append(float(re.search(r"compare succeeded in ([0-9.]+) s", done.stdout)[1]))
            mib.append(int(re.search(r"downloaded_bytes: (\d+)", done.stdout)[1]) / 2**20)
            changed = re.search(r"changed_params: (.*)", done.stdout)[1]
            if changed != "['bs']":
                sys.exit(f"the comparison found {changed} changed, not ['bs']")
            print(
                f"compare {i + 1}: {totals[-1]:.1f} s, notebook {notebooks[-1]:.1f} s, "
                f"{mib[-1]:.2f} MiB downloaded, changed parameters {changed}"
            )
        median = statistics.median
        print(
            f"compare_s={median(totals):.1f} notebook_s={median(notebooks):.1f} "
            f"artifacts_mib={median(mib):.2f}"
        )


if __name__ == "__main__":
    main()
