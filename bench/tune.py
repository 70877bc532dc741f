"""Benchmark: the cost of running each tuning trial as an executed notebook.

Usage: python bench/tune.py ../shared/data/aclImdb_v1.tar.gz [--trials 6] [--epochs 1]

Extracts and prepares the data once (``lib.prep.prepare``), then times, in the same run,
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
Last line: ``notebook_s=... parallel_s=... inprocess_s=... overhead_per_trial_s=...
peak_rss_mib=...`` with overhead per trial = ((a) - (c)) / trials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
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
        env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("MLFLOW_TRACKING_URI", None)
        t0 = time.perf_counter()
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp / "raw", filter="data")
        sys.path.insert(0, str(ROOT))
        from lib.prep import prepare

        data = tmp / "processed"
        prepare([tmp / "raw" / "aclImdb"], data)
        print(f"data prepared in {time.perf_counter() - t0:.1f} s", flush=True)

        runner = [sys.executable, "-m", "runner", "tune"]
        results: dict[str, list[tuple[float, float]]] = {
            "notebook": [],
            "parallel": [],
            "inprocess": [],
        }
        for rep in range(args.repeat):
            for name, n_jobs in (("notebook", 1), ("parallel", 2)):
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
                print(
                    f"({label}) tune notebook, n_jobs {n_jobs}: {seconds:.1f} s, "
                    f"peak RSS {rss:.0f} MiB",
                    flush=True,
                )
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
    # With --repeat, the fastest of each: other work on a shared machine only slows runs.
    best = {name: min(runs) for name, runs in results.items()}
    peak = max(rss for _, rss in results["notebook"])
    a, b, c = best["notebook"][0], best["parallel"][0], best["inprocess"][0]
    print(
        f"notebook_s={a:.1f} parallel_s={b:.1f} inprocess_s={c:.1f} "
        f"overhead_per_trial_s={(a - c) / args.trials:.2f} peak_rss_mib={peak:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--in-process":
        sys.path.insert(0, str(ROOT))
        in_process(*json.loads(sys.argv[2]))
    else:
        main()
