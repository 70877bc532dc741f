"""Benchmark: ``runner infer`` over the 25,000 test reviews, as a folder of ``.txt`` files and
as one Parquet file, against the exported model's fastest call in process.

Usage: python bench/infer.py ../shared/data/aclImdb_v1.tar.gz [--batch-size 1024]
                              [--scale 20] [--repeat 3] [--epochs 1]

Extracts the archive's labelled reviews once, prepares them through lib and trains the
default model (``nbngram``) on the train split for ``--epochs`` in a child process, saved as
a ``.keras`` file that every run below names as its ``model_uri`` (no registry look-up is
timed). One epoch is enough: the cost of scoring comes from the vocabulary, which is the
whole train split's whatever the epochs; more epochs change the weights, not the work.
Then, in one run, with a local MLflow store of its own:

* ``startup_s``: ``runner infer`` on a one-review Parquet file with a label (the process, the
  kernel, TensorFlow, the model's load, the MLflow run, the plots, the notebook logged and
  rendered): the fixed cost, taken off the runs below;
* (a) the test split as a folder (the aclImdb layout: ``pos/`` and ``neg/``, so labelled) and
  (b) the same reviews, in the same order, as one Parquet file (``id``, ``text``, ``label``;
  ``label_column`` given), each scored by ``runner infer`` into ``.jsonl``; throughput is
  reviews / (wall time - startup_s). These runs take seconds each beside a start-up of about
  as many: each is run ``--repeat`` times, in turns, and the medians are used;
* (c) in a child process, the Parquet file's texts in memory, scored by the exported model's
  ``predict_on_batch`` in slices of ``--batch-size`` (the notebook's ``batch_size``) after one
  warm-up slice, the median of 3 passes: the baseline, run in each turn with the others;
* (d) the Parquet file's rows repeated ``--scale`` times (500,000 reviews), one row group as
  pandas or pyarrow write it by default, for memory.

Peak memory is the RSS of the kernel's process tree (the runner's kernel and its children),
sampled every 50 ms with psutil: ``peak_rss_mib_1x`` from (b), ``peak_rss_mib_20x`` from (d).
Every output is checked: one row per review, and (a)'s and (b)'s probabilities equal (c)'s.
Last line: ``startup_s=... folder_reviews_per_s=... parquet_reviews_per_s=...
inprocess_reviews_per_s=... peak_rss_mib_1x=... peak_rss_mib_20x=...``
(goals: Parquet >= 0.8 of in-process, the folder >= 0.5 of it, 20x <= 1.25 x 1x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _labelled_reviews(tar: tarfile.TarFile):
    for member in tar:
        parts = member.name.split("/")
        if len(parts) >= 3 and parts[1] in ("train", "test") and parts[2] in ("pos", "neg"):
            yield member


def train(raw_dir: Path, out: Path, epochs: int) -> None:
    """Child process: prep of ``raw_dir`` into ``out``/processed, the default model trained
    on its train split, saved as ``out``/model.keras."""
    from lib.data import datasets
    from lib.data.prep import prepare
    from lib.model import models, training
    from lib.tracking.model_io import save_model

    started = time.perf_counter()
    prepare([raw_dir], out / "processed")
    data = datasets.load(out / "processed", 0.2, 4002)
    training.set_seed(4002)
    bundle = models.build_model("nbngram", data.train.texts, data.train.labels, seed=4002)
    params = models.default_train_params("nbngram") | {"learning_rate": None, "epochs": epochs}
    training.train(
        bundle, data.train.texts, data.train.labels, data.val.texts, data.val.labels, **params
    )
    save_model(bundle.export_model(), out / "model.keras")
    print(json.dumps({"seconds": time.perf_counter() - started, "train": len(data.train.texts)}))


def inprocess(model_path: Path, parquet: Path, batch_size: int, probabilities: Path) -> None:
    """Child process: the baseline, ``predict_on_batch`` on texts already in memory."""
    import numpy as np
    import pyarrow.parquet as pq

    from lib.tracking.model_io import load_model

    model = load_model(str(model_path))
    texts = pq.read_table(parquet, columns=["text"]).column("text").to_pylist()
    slices = [
        np.array(texts[i : i + batch_size], dtype=object) for i in range(0, len(texts), batch_size)
    ]
    model.predict_on_batch(slices[0])  # the first call traces the model
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        out = [model.predict_on_batch(s) for s in slices]
        passes.append(time.perf_counter() - started)
    np.save(probabilities, np.concatenate([np.asarray(o).reshape(-1) for o in out]))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": statistics.median(passes), "peak_rss_mib": rss}))


def _child(part: str, *args: object) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, __file__, "--part", part, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{part} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class TreeMemory(threading.Thread):
    """Samples the RSS of the kernels under process ``pid`` (each with its children), summed,
    every ``every`` seconds; ``peak`` is the largest sum seen, in bytes."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self._stop_event = threading.Event()
        self._kernel: dict[int, bool] = {}

    def _is_kernel(self, process) -> bool:
        # Only a yes is kept: a process seen between its fork and its exec still shows its
        # parent's command line (a one-review run's kernel was once taken for no kernel).
        if not self._kernel.get(process.pid):
            self._kernel[process.pid] = "ipykernel" in " ".join(process.cmdline())
        return self._kernel[process.pid]

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                for process in root.children(recursive=True):
                    try:
                        if self._is_kernel(process):
                            tree = [process, *process.children(recursive=True)]
                            total += sum(p.memory_info().rss for p in tree)
                    except psutil.NoSuchProcess:  # gone between the listing and the read
                        continue
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self._stop_event.wait(self.every)

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak


def runner_infer(tmp: Path, model: Path, source: Path, batch_size: int, **columns: str) -> dict:
    """``runner infer`` of ``source`` into a new ``.jsonl``: its wall time, the peak RSS of
    its kernel's tree, and the output's path."""
    n = len(list((tmp / "outputs").glob("*.jsonl"))) if (tmp / "outputs").exists() else 0
    output = tmp / "outputs" / f"{n}-{source.stem}.jsonl"
    params = {"model_uri": model, "input_path": source, "output_path": output, **columns}
    cmd = [sys.executable, "-m", "runner", "infer", "-p", "batch_size", str(batch_size)]
    for name, value in params.items():
        cmd += ["-r", name, str(value)]
    cmd += ["--output-dir", str(tmp / "runs" / f"{n}-{source.stem}")]
    env = {
        **os.environ,
        "LOG_DIR": str(tmp / "logs"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    memory = TreeMemory(proc.pid)
    memory.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    peak = memory.stop()
    if proc.returncode != 0:
        sys.exit(f"runner infer {source.name} failed ({proc.returncode}):\n{(out + err)[-3000:]}")
    if peak == 0:
        sys.exit(f"runner infer {source.name}: no kernel process was seen under the runner")
    return {"seconds": seconds, "peak_rss_mib": peak / MIB, "output": output}


def write_tables(folder: Path, tmp: Path, scale: int) -> tuple[Path, Path, Path, int]:
    """The folder's reviews, in its order, as ``test.parquet`` (id, text, label), as a
    one-review Parquet file, and ``scale`` times over as one row group: their paths and the
    number of reviews."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lib.data.review_files import open_reviews

    ids, texts, labels = [], [], []
    with open_reviews(folder) as source:
        for chunk in source.chunks():
            ids += chunk.ids
            texts += chunk.texts
            labels += chunk.labels or []
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.large_string()),
            "label": pa.array(labels, pa.int8()),
        }
    )
    one, single, scaled = tmp / "test.parquet", tmp / "single.parquet", tmp / "test-scaled.parquet"
    pq.write_table(table, one)
    pq.write_table(table.slice(0, 1), single)
    # Zero-copy: the same buffers scale times; one row group, as pandas' to_parquet writes
    # 500,000 rows by default (a reader that held a row group would hold the whole file).
    repeated = pa.concat_tables(
        [table.set_column(0, "id", pa.array([f"{k}/{i}" for i in ids])) for k in range(scale)]
    )
    pq.write_table(repeated, scaled, row_group_size=repeated.num_rows)
    return one, single, scaled, table.num_rows


def check_output(result: dict, expected) -> None:
    """The output holds one row per review, with ``expected``'s probabilities when given (an
    int: the number of rows only)."""
    import numpy as np

    path = result["output"]
    if isinstance(expected, int):
        with path.open("rb") as f:
            rows = sum(1 for _ in f)
        if rows != expected:
            sys.exit(f"{path.name} has {rows} rows for {expected} reviews")
        return
    import pyarrow.json as pjson

    got = pjson.read_json(path).column("probability").to_numpy()
    if len(got) != len(expected):
        sys.exit(f"{path.name} has {len(got)} rows for {len(expected)} reviews")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--batch-size", type=int, default=1024, help="the notebook's batch_size")
    parser.add_argument("--scale", type=int, default=20, help="times the test split, for memory")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timed input (median)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, members=_labelled_reviews(tar), filter="data")
        trained = _child("train", tmp / "aclImdb", tmp, args.epochs)
        model, folder = tmp / "model.keras", tmp / "aclImdb" / "test"
        one, single, scaled, n = write_tables(folder, tmp, args.scale)
        print(
            f"extracted, prepared, trained on {trained['train']} reviews "
            f"({trained['seconds']:.0f} s) and wrote the tables in "
            f"{time.perf_counter() - started:.0f} s; {n} test reviews",
            flush=True,
        )
        loads = [os.getloadavg()[0]]
        inprocess_runs = []
        # The one-review input is labelled as the others are: the same cells run (a labelled
        # input's metrics and confusion matrix plot cost about a second whatever its size).
        table_columns = {"id_column": "id", "label_column": "label"}
        runs = {
            "startup": (single, table_columns),
            "folder": (folder, {}),
            "parquet": (one, table_columns),
        }
        results: dict[str, list[dict]] = {name: [] for name in runs}
        for _ in range(args.repeat):  # in turns: a slow spell of the machine hits them all
            base = _child("inprocess", model, one, args.batch_size, tmp / "inprocess.npy")
            inprocess_runs.append(base["seconds"])
            expected = np.load(tmp / "inprocess.npy")
            for name, (source, columns) in runs.items():
                result = runner_infer(tmp, model, source, args.batch_size, **columns)
                check_output(result, 1 if name == "startup" else expected)
                results[name].append(result)
        inprocess_rate = n / statistics.median(inprocess_runs)
        print(
            f"in process, predict_on_batch by {args.batch_size}: "
            f"{', '.join(f'{t:.2f}' for t in inprocess_runs)} s, median "
            f"{inprocess_rate:.0f} reviews/s (peak RSS {base['peak_rss_mib']:.0f} MiB)",
            flush=True,
        )
        seconds = {
            name: statistics.median(r["seconds"] for r in found) for name, found in results.items()
        }
        peaks = {name: max(r["peak_rss_mib"] for r in found) for name, found in results.items()}
        startup_s = seconds["startup"]
        rates = {name: n / max(seconds[name] - startup_s, 1e-9) for name in ("folder", "parquet")}
        for name, found in results.items():
            each = ", ".join(f"{r['seconds']:.2f}" for r in found)
            rate = ""
            if name in rates:
                rate = (
                    f", {rates[name]:.0f} reviews/s net of start-up "
                    f"({rates[name] / inprocess_rate:.2f} of in-process)"
                )
            print(
                f"runner infer, {name}: {each} s (median {seconds[name]:.2f} s){rate}, "
                f"kernel tree peak RSS {peaks[name]:.0f} MiB",
                flush=True,
            )
        big = runner_infer(tmp, model, scaled, args.batch_size, **table_columns)
        check_output(big, n * args.scale)
        peak_1x, peak_big = peaks["parquet"], big["peak_rss_mib"]
        print(
            f"runner infer, Parquet x{args.scale} ({n * args.scale} reviews): "
            f"{big['seconds']:.1f} s, {n * args.scale / (big['seconds'] - startup_s):.0f} "
            f"reviews/s, kernel tree peak RSS {peak_big:.0f} MiB ({peak_big / peak_1x:.2f} x 1x)",
            flush=True,
        )
        loads.append(os.getloadavg()[0])
    print(f"load average (1 min) before and after: {loads[0]:.2f}, {loads[1]:.2f}", flush=True)
    print(
        f"startup_s={startup_s:.2f} folder_reviews_per_s={rates['folder']:.0f} "
        f"parquet_reviews_per_s={rates['parquet']:.0f} "
        f"inprocess_reviews_per_s={inprocess_rate:.0f} "
        f"peak_rss_mib_1x={peak_1x:.0f} peak_rss_mib_20x={peak_big:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--part":
        sys.path.insert(0, str(ROOT))
        part, rest = sys.argv[2], sys.argv[3:]
        if part == "train":
            train(Path(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            inprocess(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]))
    else:
        main()
