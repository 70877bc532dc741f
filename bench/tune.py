"""Benchmark: the cost of running each tuning trial as an executed notebook.

Usage: python bench/tune.py ../shared/data/aclImdb_v1.tar.gz [--trials 6] [--epochs 1]

Extracts and prepares the data once (``lib.data.prep.prepare``), then times, in the same run,
a study of ``--trials`` trials of ``--epochs`` epoch(s) each, with the reference search
space and sampler (TPE, seed 123: its first 10 trials are seeded random draws, so all three
runs train the same 6 parameter sets):
  (a) ``python -m runner tune`` (the tune notebook, every trial an executed train notebook),
      ``n_jobs`` 1;
  (b) the same with ``n_jobs`` 2;
  (c) the same trainings in one plain Python process: the train notebook's code cells run
      with ``exec`` (so exactly its calls into lib: data, model, training, evaluation,
      plots, export, MLflow logging) by ``lib.tuning.run_study``, without papermill or
      kernels.
Each is timed from process start to exit, and each in its own MLflow store and folder under
a temporary directory. Peak RSS is the largest total resident memory of (a)'s process tree
(runner, tune kernel, trial kernel), sampled every 0.2 s. ``--repeat N`` runs the three N
times, in turn, and reports the fastest of each (on a shared machine, other work only ever
slows a run down).
A fair comparison in one run: the extracted files are flushed to disk (``os.sync``) before
anything is timed (otherwise the first timed run pays the disk's writeback of 100,000 files),
the imports that every side needs are loaded once, untimed, so that no side pays a cold page
cache alone, and with ``--repeat`` the order of (a) and (c) alternates.

The overhead is also measured directly, from (a)'s own trials: per trial, the trial's wall time
(``seconds`` in the study's trials.csv: kernel lent, notebook executed, scraps read, notebook
logged to MLflow, kernel reset) minus the time its cells spent in their own work (nbclient's
per-cell timings, busy to idle, in the executed notebook's metadata); the mean over trials.

Last line: ``notebook_s=... parallel_s=... inprocess_s=... overhead_per_trial_s=...
direct_overhead_per_trial_s=... peak_rss_mib=...`` with overhead per trial =
((a) - (c)) / trials.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree_rss_mib(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def timed(cmd: list[str], env: dict[str, str], log_path: Path) -> tuple[float, float]:
    """Run ``cmd``; its wall time and the peak RSS of its process tree (MiB)."""
    peak = [0.0]
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    if rc != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed (rc {rc}); see {log_path}:\n" + _tail(log_path))
    return seconds, peak[0]


def _cell_work_seconds(notebook: Path) -> float:
    """The time the notebook's cells spent in their own work: each cell's busy-to-idle span
    as nbclient records it (``metadata.execution``)."""
    import nbformat

    total = 0.0
    for cell in nbformat.read(notebook, as_version=4).cells:
        timing = cell.get("metadata", {}).get("execution", {})
        busy, idle = timing.get("iopub.status.busy"), timing.get("iopub.status.idle")
        if busy and idle:
            total += (datetime.fromisoformat(idle) - datetime.fromisoformat(busy)).total_seconds()
    return total


def direct_overhead(run_dir: Path) -> float:
    """Mean over the study's trials of (trial wall time - its cells' own work), seconds."""
    with open(run_dir / "study" / "trials.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "COMPLETE"]
    if not rows:
        sys.exit(f"no complete trial in {run_dir / 'study' / 'trials.csv'}")
    gaps = [float(r["seconds"]) - _cell_work_seconds(Path(r["notebook"])) for r in rows]
    return sum(gaps) / len(gaps)


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment of the timed runs: logs under ``tmp``, no inherited MLflow store."""
    env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def prepare_data(archive: Path, tmp: Path, env: dict[str, str]) -> Path:
    """Extract ``archive`` under ``tmp`` and prepare it (``lib.data.prep.prepare``) into
    ``tmp/processed``; then flush the disk and load the libraries every run needs once,
    untimed (see the module's docstring). Returns the processed folder."""
    t0 = time.perf_counter()
    with tarfile.open(archive) as tar:
        tar.extractall(tmp / "raw", filter="data")
    sys.path.insert(0, str(ROOT))
    from lib.data.prep import prepare

    data = tmp / "processed"
    prepare([tmp / "raw" / "aclImdb"], data)
    os.sync()  # the writeback of 100,000 new files is paid here, not by a timed run
    print(f"data prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    # Untimed: the libraries every side loads, so that none pays a cold page cache alone.
    subprocess.run(
        [sys.executable, "-c", "import tensorflow, keras, mlflow, optuna, papermill, pandas"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return data


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def tune_params(data: Path, trials: int, epochs: int, n_jobs: int, store: str) -> list[str]:
    train_params = {"data_path": str(data), "epochs": epochs}
    return [
        "-f",
        "conf/hptuning.yml",
        "-p",
        "n_trials",
        str(trials),
        "-p",
        "n_jobs",
        str(n_jobs),
        "-p",
        "mlflow_tracking_uri",
        store,
        "-r",
        "mlflow_exp_name",
        "bench-tune",
        "-y",
        json.dumps({"train_params": train_params}),
    ]


def in_process(data: str, trials: int, epochs: int, store: str, out: str) -> None:
    """(c): the train notebook's code cells, exec'd per trial in this one process."""
    import matplotlib

    matplotlib.use("Agg")
    import nbformat
    import scrapbook

    from lib import tuning

    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    param_cell = next(
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])
    )
    body = [compile(c, f"<train cell {i}>", "exec") for i, c in enumerate(cells[1:], 1)]
    params_code = nb.cells[param_cell].source

    cfg = tuning.load_config(
        {
            "n_trials": trials,
            "mlflow_tracking_uri": store,
            "mlflow_exp_name": "bench-tune",
            "train_params": {"data_path": data, "epochs": epochs},
        }
    )
    handle = tuning.open_study(cfg)
    parent = tuning.start_parent_run(cfg, handle)
    glued: dict = {}
    scrapbook.glue = lambda name, value, *a, **k: glued.__setitem__(name, value)

    def trial(number: int, sampled: dict) -> tuning.TrialOutcome:
        glued.clear()
        params = tuning.trial_params(
            cfg,
            number,
            sampled,
            trial_dir=Path(out) / f"trial-{number:03d}",
            parent_run_id=parent,
            hptuning_tag=handle.hptuning_tag,
        )
        namespace: dict = {"display": lambda *a, **k: None}
        exec(params_code, namespace)
        namespace.update(params)
        try:
            for code in body:
                exec(code, namespace)
        except Exception as exc:
            return tuning.TrialOutcome(scraps=dict(glued), error=f"{type(exc).__name__}: {exc}")
        return tuning.TrialOutcome(scraps=dict(glued))

    run = tuning.run_study(handle.study, cfg, trial)
    run.raise_if_stopped()
    tuning.finish_parent_run(cfg, parent, handle.study, [], failed=False)
    print(json.dumps({"ran": run.ran}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run (a), (b), (c) this many times; report the fastest",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        tmp = Path(args.keep) if args.keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        env = bench_env(tmp)
        data = prepare_data(args.archive, tmp, env)

        runner = [sys.executable, "-m", "runner", "tune"]
        results: dict[str, list[tuple[float, float]]] = {
            "notebook": [],
            "parallel": [],
            "inprocess": [],
        }
        direct: list[float] = []

        def run_notebook(name: str, n_jobs: int, rep: int) -> None:
            folder = tmp / f"{name}-{rep}"
            store = f"sqlite:///{folder / 'mlflow.db'}"
            cmd = [
                *runner,
                *tune_params(data, args.trials, args.epochs, n_jobs, store),
                "--output-dir",
                str(folder / "run"),
            ]
            results[name].append(timed(cmd, env, tmp / f"{name}-{rep}.log"))
            seconds, rss = results[name][-1]
            label = "a" if n_jobs == 1 else "b"
            extra = ""
            if n_jobs == 1:
                direct.append(direct_overhead(folder / "run"))
                extra = f", {direct[-1]:.2f} s a trial beyond its cells' work"
            print(
                f"({label}) tune notebook, n_jobs {n_jobs}: {seconds:.1f} s, "
                f"peak RSS {rss:.0f} MiB{extra}",
                flush=True,
            )

        def run_in_process(rep: int) -> None:
            folder = tmp / f"inprocess-{rep}"
            store = f"sqlite:///{folder / 'mlflow.db'}"
            cmd = [
                sys.executable,
                __file__,
                "--in-process",
                json.dumps([str(data), args.trials, args.epochs, store, str(folder)]),
            ]
            results["inprocess"].append(timed(cmd, env, tmp / f"inprocess-{rep}.log"))
            seconds, rss = results["inprocess"][-1]
            print(f"(c) in process: {seconds:.1f} s, peak RSS {rss:.0f} MiB", flush=True)

        for rep in range(args.repeat):
            # (a) and (c) alternate which goes first, so that neither always runs on a
            # machine the other has just warmed (or left busy with writeback).
            if rep % 2 == 0:
                run_notebook("notebook", 1, rep)
                run_in_process(rep)
            else:
                run_in_process(rep)
                run_notebook("notebook", 1, rep)
            run_notebook("parallel", 2, rep)
    # With --repeat, the fastest of each: other work on a shared machine only slows runs.
    best = {name: min(runs) for name, runs in results.items()}
    peak = max(rss for _, rss in results["notebook"])
    a, b, c = best["notebook"][0], best["parallel"][0], best["inprocess"][0]
    print(
        f"notebook_s={a:.1f} parallel_s={b:.1f} inprocess_s={c:.1f} "
        f"overhead_per_trial_s={(a - c) / args.trials:.2f} "
        f"direct_overhead_per_trial_s={min(direct):.2f} peak_rss_mib={peak:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--in-process":
        sys.path.insert(0, str(ROOT))
        in_process(*json.loads(sys.argv[2]))
    else:
        main()
