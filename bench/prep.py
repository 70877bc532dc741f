"""Benchmark: this project's prep of all 50,000 reviews against the reference algorithm.

Usage: python bench/prep.py ../shared/data/aclImdb_v1.tar.gz [--skip-reference]

Extracts the archive once into a temporary folder, then times, in the same run and each in
its own child process (so that peak memory is the prep's own):
  (a) ``lib.prep.prepare`` over train and test (the prep notebook's work);
  (b) the reference pipeline's algorithm: one file at a time, cleaned with ``tf.strings``
      regexes and written with ``tf.io.write_file`` to a mirrored folder.
Last line: ``prep_s=... reference_s=... speedup=... peak_rss_mib=...``.
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


def ours(raw_dir: Path, out: Path) -> None:
    from lib.prep import prepare

    started = time.perf_counter()
    manifest = prepare([raw_dir], out)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": manifest["rows"], "peak_rss_mib": rss}))


def reference(raw_dir: Path, out: Path) -> None:
    import tensorflow as tf

    from lib.cleaning import HTML_TAG, PUNCTUATION, SINGLE_LETTERS, WHITESPACE

    started = time.perf_counter()
    count = 0
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            src, dst = raw_dir / split / label, out / split / label
            dst.mkdir(parents=True, exist_ok=True)
            for name in sorted(os.listdir(src)):
                text = tf.io.read_file(str(src / name))
                text = tf.strings.lower(text)
                text = tf.strings.regex_replace(text, HTML_TAG, " ")
                text = tf.strings.regex_replace(text, PUNCTUATION, " ")
                text = tf.strings.regex_replace(text, SINGLE_LETTERS, " ")
                text = tf.strings.regex_replace(text, WHITESPACE, " ")
                tf.io.write_file(str(dst / name), tf.strings.strip(text))
                count += 1
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "files": count, "peak_rss_mib": rss}))


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, filter="data")
        raw_dir = tmp / "aclImdb"
        print(f"extracted in {time.perf_counter() - t0:.1f} s", flush=True)
        a = _child("ours", raw_dir, tmp / "processed")
        print(
            f"(a) lib.prep.prepare: {a['seconds']:.2f} s, rows {a['rows']}, "
            f"peak RSS {a['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        if args.skip_reference:
            b = {"seconds": float("nan")}
        else:
            b = _child("reference", raw_dir, tmp / "reference")
            print(
                f"(b) reference (tf.strings, one file at a time): {b['seconds']:.2f} s for "
                f"{b['files']} files",
                flush=True,
            )
    speedup = b["seconds"] / a["seconds"]
    print(
        f"prep_s={a['seconds']:.2f} reference_s={b['seconds']:.2f} speedup={speedup:.1f} "
        f"peak_rss_mib={a['peak_rss_mib']:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--part":
        sys.path.insert(0, str(ROOT))
        {"ours": ours, "reference": reference}[sys.argv[2]](Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
