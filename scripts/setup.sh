#!/usr/bin/env bash
# Create .venv (Python 3.11) and install a requirements file's lock (requirements-x.txt ->
# requirements-x.lock: every package pinned and hashed, docs/dependencies.md), then this
# project (editable, without dependencies: the lock holds them all).
# Usage: scripts/setup.sh [requirements file]   (default requirements.txt)
# Re-running is cheap: nothing is installed again unless the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."
req=${1:-requirements.txt}
py=${PYTHON:-}
if [ -z "$py" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
  done
fi
[ -n "$py" ] || { echo "error: Python 3.11 not found; install it or set PYTHON=/path/to/python3.11" >&2; exit 1; }
if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
  echo "error: $py is $("$py" -V 2>&1); this project needs Python 3.11 or newer (set PYTHON=...)" >&2
  exit 1
fi
lock=${req%.txt}.lock
[ -f "$lock" ] || { echo "error: $req has no lock $lock; run scripts/lock.py" >&2; exit 1; }
# An input edited since its lock was compiled: installing the old lock would ignore the edit.
"$py" scripts/lock.py --check
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(basename "$req")
# This script is part of the stamp: a change to how it installs reinstalls.
want=$(cat "$lock" requirements-prep.txt requirements-train.txt pyproject.toml "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check uv==0.13.8
# uv resolves and installs the same pins as pip, about ten times faster. Unlike pip, it does
# not compile bytecode unless asked: without .pyc files (and with PYTHONDONTWRITEBYTECODE set,
# as on CI machines) every process and kernel compiles what it imports, which doubles
# `import tensorflow, mlflow` (12 s -> 6 s here).
# --require-hashes: every package pinned and matching a hash of the lock. The project's own
# metadata lists requirements-prep.txt and requirements-train.txt (deptry reads them); the
# lock has installed them already, hence --no-deps (an editable install has no hash).
uv=(.venv/bin/python -m uv pip install -q --compile-bytecode --python .venv/bin/python)
"${uv[@]}" --require-hashes -r "$lock"
"${uv[@]}" --no-deps -e .
echo "$want" > "$stamp"
