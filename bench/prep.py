"""Benchmark: this project's prep of all 50,000 reviews against the reference algorithm.

Usage: python bench/prep.py ../shared/data/aclImdb_v1.tar.gz [--skip-reference]
                             [--reference-out DIR] [--repeat N]

Extracts the archive's 50,000 labelled reviews (train/test, pos/neg) once into a temporary
folder, then times, in the same run and each in its own child process (so that peak memory
is the prep's own):
  (a) ``lib.data.prep.prepare`` over train and test (the prep notebook's work);
  (b) the reference pipeline's algorithm (its ``clean_data.py`` and
      ``data_prep/process_text.py``): every ``*.txt`` under the raw dir found with
      ``rglob``, one file at a time: read with ``open().read()``, lowercased and cleaned with
      its four ``tf.strings.regex_replace`` patterns, the output path made with ``re.sub``
      and its folder with ``os.makedirs``, written with ``tf.io.write_file``, with its two
      debug log calls per file (filtered out at its INFO level, as in its logging.yml).
Both see the same 50,000 files: ``train/unsup`` is left out of the extraction because the
reference's ``rglob`` would otherwise also clean its 50,000 unlabelled reviews.
The reference's time depends on how fast the disk takes 50,000 new small files (10 to 30 s
on the 2-core machine); ``--reference-out /dev/shm`` writes its mirrored folder to memory
instead, which leaves its CPU work alone.
Each is run ``--repeat`` times (3), all of (a) first, and the medians are compared.
Last line: ``prep_s=... reference_s=... speedup=... peak_rss_mib=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ours(raw_dir: Path, out: Path) -> None:
    from lib.data.prep import prepare

    started = time.perf_counter()
    manifest = prepare([raw_dir], out)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": manifest["rows"], "peak_rss_mib": rss}))


# The reference's patterns, as it writes them (ASCII classes; its own punctuation set).
REFERENCE_PATTERNS = (
    "<[^>]+>",
    "[%s]" % re.escape(string.punctuation),  # noqa: UP031 - the reference's own spelling
    r"\s+[a-zA-Z]\s+",
    r"\s+",
)


def reference(raw_dir: Path, out: Path) -> None:
    import tensorflow as tf

    logging.basicConfig(level=logging.INFO)
    logger = logging.getLogger("reference")
    raw_text, processed_text = str(raw_dir), str(out)
    started = time.perf_counter()
    count = 0
    for filename in raw_dir.rglob("*.txt"):
        try:
            logger.debug("Processing text file: %s", filename)
            with open(filename, encoding="utf-8") as file:
                text = tf.strings.lower(file.read())
            for pattern in REFERENCE_PATTERNS:
                text = tf.strings.regex_replace(text, pattern, " ")
            out_filename = re.sub(raw_text, processed_text, str(filename))
            os.makedirs(os.path.dirname(out_filename), exist_ok=True)
            tf.io.write_file(out_filename, text)
            logger.debug("Processed text file exported: %s", out_filename)
            count += 1
        except Exception:
            logger.error("Error encountered while processing file: %s", filename)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "files": count, "peak_rss_mib": rss}))


def _labelled_reviews(tar: tarfile.TarFile):
    for member in tar:
        parts = member.name.split("/")
        if len(parts) >= 3 and parts[1] in ("train", "test") and parts[2] in ("pos", "neg"):
            yield member


def _child(part: str, raw_dir: Path, out: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "LOG_DIR": str(out.parent / "logs")}
    result = subprocess.run(
        [sys.executable, __file__, "--part", part, str(raw_dir), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{part} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--reference-out",
        type=Path,
        help="folder in which the reference writes its mirrored folder (default: the temp one)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each, in fresh processes (median shown)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, members=_labelled_reviews(tar), filter="data")
        raw_dir = tmp / "aclImdb"
        print(f"extracted in {time.perf_counter() - t0:.1f} s", flush=True)
        ours_runs = []
        for i in range(args.repeat):
            os.sync()  # the kernel's write-back of earlier files would otherwise overlap the run
            a = _child("ours", raw_dir, tmp / f"processed-{i}")
            ours_runs.append(a)
            print(
                f"(a) lib.data.prep.prepare: {a['seconds']:.2f} s, rows {a['rows']}, "
                f"peak RSS {a['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
        reference_s = float("nan")
        if not args.skip_reference:
            reference_runs = []
            out_root = Path(tempfile.mkdtemp(dir=args.reference_out or tmp))
            try:
                for i in range(args.repeat):
                    b = _child("reference", raw_dir, out_root / f"reference-{i}")
                    reference_runs.append(b["seconds"])
                    print(
                        f"(b) reference (tf.strings, one file at a time): {b['seconds']:.2f} s "
                        f"for {b['files']} files",
                        flush=True,
                    )
            finally:
                shutil.rmtree(out_root, ignore_errors=True)
            reference_s = statistics.median(reference_runs)
    prep_s = statistics.median(a["seconds"] for a in ours_runs)
    peak = max(a["peak_rss_mib"] for a in ours_runs)
    print(
        f"prep_s={prep_s:.2f} reference_s={reference_s:.2f} speedup={reference_s / prep_s:.1f} "
        f"peak_rss_mib={peak:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--part":
        sys.path.insert(0, str(ROOT))
        {"ours": ours, "reference": reference}[sys.argv[2]](Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
