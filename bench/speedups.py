"""Benchmark: what each speed trick of ``lib/core/speedups.py`` saves, measured with that trick off.

Usage: python bench/speedups.py ../shared/data/aclImdb_v1.tar.gz [--reviews 500] [--trials 4]
       [--repeat 3] [--tricks gc_freeze,ready_client]

Takes a small data set from the archive (the first ``--reviews`` reviews of each split and
label: the tricks save fixed costs, imports and kernels, which do not grow with the data),
then runs the three stages as a user does, each timed from process start to exit:
  prep:  ``python -m runner prep`` on that data;
  train: ``python -m runner train -p epochs 1``;
  tune:  ``python -m runner tune`` with ``--trials`` trials of 1 epoch (the reference search
         space), and its direct overhead per trial: a trial's wall time minus its cells' own
         work (``bench/tune.py``'s ``direct_overhead``).
with every trick on, with every trick off (``IMDB_SPEEDUPS=off``) and with each trick off alone
(``IMDB_SPEEDUPS=-<trick>``). The settings take turns within each of ``--repeat`` rounds, and
each figure is the fastest of its rounds (on a shared machine, other work only slows a run).
Each run gets a fresh copy of one MLflow store, so no run pays the store's creation.

Prints a line per setting, then one line per trick with what turning it off costs (positive:
the trick saves that much):
``trick=<name> prep_s=+.. train_s=+.. tune_s=+.. trial_overhead_s=+..``
and last ``all prep_s=+.. train_s=+.. tune_s=+.. trial_overhead_s=+..`` (every trick off).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.core.speedups import SWITCH, TRICKS  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_tune", ROOT / "bench" / "tune.py")
bench_tune = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tune)

STAGES = ("prep", "train", "tune")


def extract_subset(archive: Path, dest: Path, per_folder: int) -> Path:
    """The first ``per_folder`` reviews of each of aclImdb/{train,test}/{pos,neg}."""
    taken: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        members = []
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 4 or parts[1] not in ("train", "test") or not member.isfile():
                continue
            if parts[2] not in ("pos", "neg"):
                continue
            folder = "/".join(parts[1:3])
            if taken.get(folder, 0) < per_folder:
                taken[folder] = taken.get(folder, 0) + 1
                members.append(member)
        tar.extractall(dest, members=members, filter="data")
    return dest / "aclImdb"


def run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        sys.exit(f"{' '.join(cmd[:4])} failed (rc {rc}); see {log}:\n{tail}")
    return seconds


def one_round(
    setting: str, switch: str, raw: Path, tmp: Path, template: Path, args, rnd: int
) -> dict[str, float]:
    folder = tmp / f"{setting}-{rnd}"
    folder.mkdir()
    shutil.copy(template, folder / "mlflow.db")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "LOG_DIR": str(folder / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if switch:
        env[SWITCH] = switch
    else:
        env.pop(SWITCH, None)
    runner = [sys.executable, "-m", "runner"]
    data = folder / "processed"
    common = ["-p", "mlflow_tracking_uri", store, "-r", "mlflow_exp_name", "bench"]
    # The runs' artifacts in the run's folder, not in the project's mlartifacts/.
    common += ["-r", "mlflow_artifact_location", str(folder / "artifacts")]
    # prep always runs (train and tune need its data set); --stages says what is reported.
    figures = {
        "prep": run(
            [*runner, "prep", "-y", json.dumps({"raw_dirs": [str(raw)]})]
            + ["-r", "processed_dir", str(data), "--output-dir", str(folder / "prep")],
            env,
            folder / "prep.log",
        )
    }
    if "train" in args.stages:
        figures["train"] = run(
            [*runner, "train", *common, "-r", "data_path", str(data), "-p", "epochs", "1"]
            + ["-r", "model_dir", str(folder / "model"), "--output-dir", str(folder / "train")],
            env,
            folder / "train.log",
        )
    if "tune" in args.stages:
        train_params = {"data_path": str(data), "epochs": 1}
        figures["tune"] = run(
            [*runner, "tune", *common, "-f", "conf/hptuning.yml"]
            + ["-p", "n_trials", str(args.trials), "-y", json.dumps({"train_params": train_params})]
            + ["--output-dir", str(folder / "tune")],
            env,
            folder / "tune.log",
        )
        figures["trial_overhead"] = bench_tune.direct_overhead(folder / "tune")
    return {k: v for k, v in figures.items() if k in args.stages or k == "trial_overhead"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--reviews", type=int, default=500, help="per split and label")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tricks", default=",".join(TRICKS), help="comma list to measure")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma list of stages to time")
    args = parser.parse_args()
    args.stages = [st for st in args.stages.split(",") if st]
    if set(args.stages) - set(STAGES):
        sys.exit(f"unknown stages {sorted(set(args.stages) - set(STAGES))}; known: {STAGES}")
    tricks = [t for t in args.tricks.split(",") if t]
    unknown = sorted(set(tricks) - set(TRICKS))
    if unknown:
        sys.exit(f"unknown tricks {unknown}; known: {', '.join(TRICKS)}")
    settings = {"on": "", "off": "off", **{t: f"-{t}" for t in tricks}}

    with tempfile.TemporaryDirectory(prefix="bench-speedups-") as tmp_name:
        tmp = Path(args.keep) if args.keep else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        raw = extract_subset(args.archive, tmp / "raw", args.reviews)
        template = tmp / "template.db"
        # One store created once (MLflow's migrations take seconds); each run gets a copy.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from lib.tracking.runs import check_store; check_store(sys.argv[1])",
                f"sqlite:///{template}",
            ],
            cwd=ROOT,
            check=True,
        )
        os.sync()
        best: dict[str, dict[str, float]] = {}
        for rnd in range(args.repeat):
            order = list(settings.items())
            if rnd % 2:  # alternate the order, so that no setting always runs first
                order.reverse()
            for setting, switch in order:
                figures = one_round(setting, switch, raw, tmp, template, args, rnd)
                print(
                    f"round {rnd} {setting:>18}: "
                    + " ".join(f"{k}={v:.2f}" for k, v in figures.items()),
                    flush=True,
                )
                kept = best.setdefault(setting, figures)
                for key, value in figures.items():
                    kept[key] = min(kept[key], value)

    keys = [*args.stages] + (["trial_overhead"] if "tune" in args.stages else [])
    for setting in settings:
        print(f"{setting:>18}: " + " ".join(f"{k}_s={best[setting][k]:.2f}" for k in keys))
    for setting in [*tricks, "off"]:
        label = "all" if setting == "off" else f"trick={setting}"
        saved = {k: best[setting][k] - best["on"][k] for k in keys}
        print(label + " " + " ".join(f"{k}_s={v:+.2f}" for k, v in saved.items()))


if __name__ == "__main__":
    main()
