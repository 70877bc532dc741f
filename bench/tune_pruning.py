"""Benchmark: what the median pruner saves a study, and a trial's fixed cost.

Usage: python bench/tune_pruning.py ../shared/data/aclImdb_v1.tar.gz [--trials 12] [--epochs 8]
       [--keep DIR] [--studies full,pruned]

Extracts and prepares the data once (``bench/tune.py``'s ``prepare_data``), then runs, in the
same run, the same single-objective study twice through ``python -m runner tune`` (the tune
notebook, every trial an executed train notebook), each timed from process start to exit, in
its own MLflow store and folder: the named setup ``conf/hptuning-pruning.yml`` (objective
``val_loss``, minimised; TPE with seed 123; a search space where trials really differ:
``learning_rate`` log-uniform in [1e-3, 1], which spans the default model's own rates, 0.02
for Adam and 0.3 for RMSprop, and ``optimiser`` among adam, rmsprop and sgd, whose own rate
is 1000, so many trials learn slowly or not at all), with ``--trials`` trials of ``--epochs``
epochs, ``n_jobs`` 1 and ``storage`` null;
  (full)   without a pruner: every trial trains every epoch, then is evaluated and exported;
  (pruned) with the median pruner (``n_startup_trials`` 3, ``n_warmup_steps`` 1, on
           ``val_loss``): a trial whose ``val_loss`` after an epoch is worse than the median of
           the earlier trials' at that epoch stops there (and skips evaluation and export).
The sampler's first 10 trials are seeded random draws, the same in both studies; after them,
TPE sees pruned trials in one and complete ones in the other, so the two may then differ.

A trial's fixed cost is measured on the full study, where every trial runs every epoch and
every cell: ``fixed_s`` is the mean over its trials of the trial's wall time (``seconds`` in
the study's trials.csv: the kernel lent, the notebook executed, its scraps read, the notebook
logged to MLflow, the kernel reset) minus the sum of its epochs' times (each epoch from its
start to its end, training steps and validation, as lib.core.progress's Keras callback measures it:
the ``seconds`` of the epoch events in the executed notebook). So it is everything a trial
costs beyond its epochs: the kernel's reset and hand-over, the data, the vectoriser, building
the model, evaluating on validation and test, the plots, the export, MLflow logging, saving the
notebook, the scraps.

Then the cost of reporting an epoch to the study: on the pruned study's own storage (the
journal file the trials reported to, holding all its trials), a new trial is opened as a
trial kernel opens its own (``lib.tuning.pruning.open_trial``) and reports ``--epochs``
values with ``should_prune`` after each, as the notebook's callback does; the mean per epoch.

``--studies full`` runs the full study alone (to measure the fixed cost, e.g. with a speed
trick off: ``IMDB_SPEEDUPS=-data_cache``) and ends with ``full_s=... fixed_s=...``.

Last line: ``pruned_s=... full_s=... speedup=... best_pruned=... best_full=...
pruned_trials=... fixed_s=...``, speedup = full_s / pruned_s, best_* the lowest ``val_loss``
of a complete trial in each study.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_tune", ROOT / "bench" / "tune.py")
bench_tune = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tune)

PROGRESS_MIME = "application/vnd.imdb-sentiment.progress+json"  # lib.core.progress.MIME
SETUP = ROOT / "conf" / "hptuning-pruning.yml"  # the named setup: space, sampler, pruner


def named_setup() -> dict:
    """conf/hptuning-pruning.yml, the study both runs share (but for the pruner)."""
    return yaml.safe_load(SETUP.read_text())


PRUNER = named_setup()["pruner"]


def study_config(data: Path, trials: int, epochs: int, pruner: dict | None) -> dict:
    """The tune's parameters (a ``-f`` file) of one of the two studies."""
    setup = named_setup()
    return {
        **{k: setup[k] for k in ("sampler", "directions", "objectives", "search_space")},
        "study_name": "bench-pruning",
        "storage": None,
        "n_trials": trials,
        "n_jobs": 1,
        "train_params": {"data_path": str(data), "epochs": epochs},
        "pruner": pruner,
        "prune_on": setup["prune_on"],
    }


def epoch_seconds(notebook: Path) -> list[float]:
    """The time of each epoch the notebook trained: its progress events' ``seconds``."""
    import nbformat

    seconds = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            event = output.get("data", {}).get(PROGRESS_MIME)
            if isinstance(event, dict) and event.get("event") == "epoch":
                seconds.append(float(event["seconds"]))
    return seconds


def trials(run_dir: Path) -> list[dict]:
    """The study's trials (trials.csv), each with its epochs' seconds (``epochs``)."""
    with open(run_dir / "study" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["epochs"] = epoch_seconds(Path(row["notebook"])) if row["notebook"] else []
    return rows


def fixed_seconds(rows: list[dict], state: str = "COMPLETE") -> float | None:
    """Mean over the trials in ``state`` of (wall time - the sum of its epochs' times)."""
    gaps = [float(r["seconds"]) - sum(r["epochs"]) for r in rows if r["state"] == state]
    return statistics.fmean(gaps) if gaps else None


def best(rows: list[dict]) -> float:
    values = [float(r["val_loss"]) for r in rows if r["state"] == "COMPLETE"]
    if not values:
        sys.exit("no complete trial in a study")
    return min(values)


def report_seconds(run_dir: Path, epochs: int) -> float:
    """Mean seconds of one epoch's report and pruning decision, on the study's journal
    (``bench/prune_report.py``'s measurement, on this study)."""
    path = ROOT / "bench" / "prune_report.py"
    spec = importlib.util.spec_from_file_location("prune_report", path)
    prune_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prune_report)
    from lib.tuning import storage
    from lib.tuning.study import TEMPORARY_JOURNAL

    journal = str(run_dir / TEMPORARY_JOURNAL)
    study = prune_report.optuna.load_study(
        study_name="bench-pruning", storage=storage.open_storage(journal, heartbeat_interval=None)
    )
    return prune_report.time_reports(study, journal, epochs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    parser.add_argument("--studies", default="full,pruned", help="full, pruned or both")
    args = parser.parse_args()
    studies = [s.strip() for s in args.studies.split(",")]
    if not studies or set(studies) - {"full", "pruned"}:
        parser.error(f"--studies {args.studies!r}: give full, pruned or full,pruned")
    with tempfile.TemporaryDirectory(prefix="bench-tune-pruning-") as tmp:
        tmp = Path(args.keep) if args.keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        env = bench_tune.bench_env(tmp)
        data = bench_tune.prepare_data(args.archive, tmp, env)
        results = {}
        for name, pruner in (("full", None), ("pruned", PRUNER)):
            if name not in studies:
                continue
            folder = tmp / name
            folder.mkdir()
            conf = folder / "tune.yml"
            conf.write_text(yaml.safe_dump(study_config(data, args.trials, args.epochs, pruner)))
            cmd = [
                sys.executable,
                "-m",
                "runner",
                "tune",
                "-f",
                str(conf),
                "-p",
                "mlflow_tracking_uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "-r",
                "mlflow_exp_name",
                "bench-tune-pruning",
                "--output-dir",
                str(folder / "run"),
            ]
            seconds, rss = bench_tune.timed(cmd, env, tmp / f"{name}.log")
            rows = trials(folder / "run")
            results[name] = (seconds, rows)
            epochs = [s for r in rows for s in r["epochs"]]
            states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED")}
            print(
                f"({name}) {seconds:.1f} s, peak RSS {rss:.0f} MiB, {states['COMPLETE']} complete "
                f"and {states['PRUNED']} pruned trials, {len(epochs)} epochs of "
                f"{statistics.fmean(epochs):.2f} s on average, best val_loss {best(rows):.4f}",
                flush=True,
            )
            for state in ("COMPLETE", "PRUNED"):
                fixed = fixed_seconds(rows, state)
                if fixed is not None:
                    print(f"({name}) {state.lower()} trials: {fixed:.2f} s beyond their epochs")
        if "pruned" in results:
            report = report_seconds(tmp / "pruned" / "run", args.epochs)
            print(f"reporting an epoch to the study (journal file): {1000 * report:.1f} ms")
    if "pruned" not in results or "full" not in results:
        for name, (seconds, rows) in results.items():
            print(f"{name}_s={seconds:.1f} fixed_s={fixed_seconds(rows):.2f}")
        return
    (full_s, full), (pruned_s, pruned) = results["full"], results["pruned"]
    print(
        f"pruned_s={pruned_s:.1f} full_s={full_s:.1f} speedup={full_s / pruned_s:.2f} "
        f"best_pruned={best(pruned):.4f} best_full={best(full):.4f} "
        f"pruned_trials={sum(r['state'] == 'PRUNED' for r in pruned)} "
        f"fixed_s={fixed_seconds(full):.2f}"
    )


if __name__ == "__main__":
    main()
