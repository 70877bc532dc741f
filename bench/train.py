"""Benchmark: the default train notebook on the full data set, against the reference model.

Usage: python bench/train.py ../shared/data/aclImdb_v1.tar.gz

Extracts the archive and prepares all 50,000 reviews through lib, then times in the same run:
  (a) the default train notebook executed end to end by the runner (kernel start included),
      tracked in a throwaway local MLflow store;
  (b) the reference architecture trained from scratch (TextVectorization 20,000 tokens x 256
      -> Embedding(128) -> GlobalAveragePooling1D -> Dense(16, relu) -> Dense(1, sigmoid),
      adam, 3 epochs, batch 32, validation split 0.2), in its own process.
Last line: ``test_accuracy=... train_s=... reference_accuracy=... reference_s=... peak_rss_mib=...``
(peak_rss_mib: the largest process of (a), the notebook's kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reference(processed: Path) -> None:
    from lib.data import datasets
    from lib.model import evaluation, models, training

    started = time.perf_counter()
    data = datasets.load(processed, 0.2, 4002)
    training.set_seed(4002)
    bundle = models.build_model("reference", data.train.texts, data.train.labels, seed=4002)
    training.train(
        bundle,
        data.train.texts,
        data.train.labels,
        data.val.texts,
        data.val.labels,
        optimiser="adam",
        learning_rate=0.001,
        epochs=3,
        bs=32,
    )
    probs = training.predict_proba(bundle, data.test.texts)
    accuracy = evaluation.binary_metrics(data.test.labels, probs)["accuracy"]
    print(json.dumps({"seconds": time.perf_counter() - started, "test_accuracy": accuracy}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from lib.data.prep import prepare

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, filter="data")
        processed = tmp / "processed"
        prepare([tmp / "aclImdb"], processed)
        env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [
            sys.executable,
            "-m",
            "runner",
            "train",
            "-p",
            "data_path",
            str(processed),
            "-p",
            "model_dir",
            str(tmp / "model"),
            "--output-dir",
            str(tmp / "run"),
            "-p",
            "mlflow_tracking_uri",
            f"sqlite:///{tmp / 'mlflow.db'}",
        ]
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        train_s = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"train notebook failed:\n{result.stderr[-3000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        scraps = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
        accuracy = float(scraps["test_accuracy"])
        print(
            f"(a) train notebook: test_accuracy {accuracy:.4f}, val_accuracy "
            f"{float(scraps['val_accuracy']):.4f}, {train_s:.1f} s end to end "
            f"(fit {float(scraps['train_seconds']):.1f} s), peak RSS {peak:.0f} MiB",
            flush=True,
        )
        ref = {"test_accuracy": float("nan"), "seconds": float("nan")}
        if not args.skip_reference:
            out = subprocess.run(
                [sys.executable, __file__, "--reference", str(processed)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                sys.exit(f"reference failed:\n{out.stderr[-3000:]}")
            ref = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"(b) reference: test_accuracy {ref['test_accuracy']:.4f} in "
                f"{ref['seconds']:.1f} s",
                flush=True,
            )
    print(
        f"test_accuracy={accuracy:.4f} train_s={train_s:.1f} "
        f"reference_accuracy={ref['test_accuracy']:.4f} reference_s={ref['seconds']:.1f} "
        f"peak_rss_mib={peak:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--reference":
        sys.path.insert(0, str(ROOT))
        reference(Path(sys.argv[2]))
    else:
        main()
