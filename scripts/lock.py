#!/usr/bin/env python3
"""Compile the locks: every package of each environment role pinned and hashed, one version
of each package across all roles (docs/dependencies.md).

Each role's direct requirements (INPUT.txt, edited by hand) have a lock beside them
(INPUT.lock, never edited by hand). All inputs are resolved together first
(requirements-all.lock), then each role with that joint lock as constraints, so that no
package gets two versions across roles. Each lock's header holds a digest of its inputs'
requirement lines (comments and blank lines left out): tests/scripts/test_lock.py fails when an
input changed since its lock was compiled.

Usage: .venv/bin/python scripts/lock.py [--upgrade | --upgrade-package NAME ...]
       python3 scripts/lock.py --check   (stale locks named, exit 1; needs no uv)
Without --upgrade the versions already locked are kept wherever the inputs allow them.
Standard library only (scripts/setup.sh runs --check before .venv exists); compiling
needs uv (`python -m uv`, installed by scripts/setup.sh) and the package index.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The lock reader lives in lib (the logged model reads the serving lock with it); it and lib's
# package files import nothing outside the standard library.
sys.path.insert(0, str(ROOT))
from lib.core.pins import normalized, read_lock  # noqa: E402, F401  (read_lock: for tests)
from lib.core.pins import requirement_lines as _requirement_lines  # noqa: E402


def requirement_lines(name: str, root: Path = ROOT) -> list[str]:
    """The requirement and option lines of an input, ``-r`` files inlined, comments dropped."""
    return _requirement_lines(name, root)


# Role -> its input. requirements-train.txt is no role: the training roles include it.
ROLES = {
    "prep": "requirements-prep.txt",
    "train": "requirements.txt",
    "train-gpu": "requirements-gpu.txt",
    "serve": "requirements-serve.txt",
    "test": "requirements-test.txt",
    # The images' installer (uv), itself installed from a hashed lock and left out of them.
    "build": "requirements-build.txt",
}
ALL_LOCK = "requirements-all.lock"
# What the locks are for: the images' CPython 3.11 (any 3.11.x: the offline tests' stand-in
# base image has Debian's 3.11.2) on Linux x86_64 with glibc 2.28 or newer. Part of the digest:
# changing it makes every lock stale.
TARGET = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")
DIGEST_PREFIX = "# inputs-sha256: "


def lock_of(requirements: str) -> str:
    """The lock compiled from an input file: requirements-x.txt -> requirements-x.lock."""
    return requirements.removesuffix(".txt") + ".lock"


def inputs_digest(names: list[str], root: Path = ROOT) -> str:
    """sha256 of the inputs' requirement lines (sorted) and the resolution target."""
    lines = sorted({line for name in names for line in requirement_lines(name, root)})
    text = "\n".join([" ".join(TARGET), *lines]) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def lock_inputs() -> dict[str, list[str]]:
    """Lock file -> the inputs it is compiled from."""
    locks = {ALL_LOCK: list(ROLES.values())}
    locks.update({lock_of(name): [name] for name in ROLES.values()})
    return locks


def recorded_digest(lock: Path) -> str | None:
    """The inputs digest written in a lock's header (None without one)."""
    with lock.open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            if line.startswith(DIGEST_PREFIX):
                return line[len(DIGEST_PREFIX) :].strip()
    return None


def stale(root: Path = ROOT) -> list[str]:
    """One line per lock that is missing or older than its inputs."""
    problems = []
    for lock, inputs in lock_inputs().items():
        path = root / lock
        if not path.is_file():
            problems.append(f"{lock} is missing")
        elif recorded_digest(path) != inputs_digest(inputs, root):
            problems.append(f"{lock} is older than {', '.join(inputs)}")
    return problems


def _compile(inputs: list[str], lock: str, extra: list[str]) -> None:
    header = [
        f"# The lock of {' + '.join(inputs)}: every package pinned and hashed.",
        "# Written by scripts/lock.py, never by hand (docs/dependencies.md).",
        f"{DIGEST_PREFIX}{inputs_digest(inputs)}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.lock"
        if (ROOT / lock).is_file():  # uv keeps the versions of the file it writes
            out.write_bytes((ROOT / lock).read_bytes())
        argv = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--generate-hashes"]
        argv += ["--no-header", *TARGET, *extra, "-o", str(out), *inputs]
        subprocess.run(argv, cwd=ROOT, check=True)
        body = out.read_text(encoding="utf-8")
    (ROOT / lock).write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    print(f"{lock}: {sum(1 for x in body.splitlines() if x[:1].isalnum())} packages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="name stale locks, exit 1")
    parser.add_argument("--upgrade", action="store_true", help="newest versions the inputs allow")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for line in problems:
            print(f"error: {line}: run scripts/lock.py (docs/dependencies.md)", file=sys.stderr)
        return 1 if problems else 0
    extra = ["--upgrade"] if args.upgrade else []
    for name in args.upgrade_package:
        extra += ["--upgrade-package", name]
    _compile(list(ROLES.values()), ALL_LOCK, extra)
    for name in ROLES.values():
        _compile([name], lock_of(name), ["--constraint", ALL_LOCK])
    return 0


if __name__ == "__main__":
    sys.exit(main())
