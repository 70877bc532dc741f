#!/usr/bin/env bash
# The tests, from a fresh machine: set up .venv with the test tools, lint, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow" -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system_packages.sh
scripts/setup.sh requirements-test.txt
py=.venv/bin/python
$py -m ruff check .
$py -m ruff format --check .
$py -m deptry .   # every import pinned in requirements.txt, every pin used
.venv/bin/lint-imports --no-cache --no-logo   # the layers: runner over lib, the groups in each (pyproject.toml)
# Two test processes (pytest-xdist; tests/conftest.py keeps each module, and the Docker modules
# together, in one of them): about half of one process's time is waiting on kernels, servers
# and image builds. TEST_PROCESSES=0 runs them in this process. The slowest tests are listed.
exec $py -m pytest -n "${TEST_PROCESSES:-2}" --dist loadfile --durations=25 "$@"
