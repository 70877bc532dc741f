#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the pinned requirements plus this project (editable).
# Usage: scripts/setup.sh [requirements file]   (default requirements.txt)
# Re-running is cheap: nothing is installed again unless the requirements changed.
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
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(basename "$req")
want=$(cat "$req" requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check uv==0.13.8
# uv resolves and installs the same pins as pip, about ten times faster.
.venv/bin/python -m uv pip install -q --python .venv/bin/python -r "$req" -e .
echo "$want" > "$stamp"
