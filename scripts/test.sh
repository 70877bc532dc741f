#!/usr/bin/env bash
# The tests, from a fresh machine (docs/tests.md): set up .venv with the test tools, lint, then
# pytest in two tiers. The fast tier (the tests not marked slow: no kernel, server, browser,
# container or TensorFlow, which tests/support/tiers.py enforces) runs first and needs no system
# package, so that a broken import fails in minutes; then the Debian packages the slow tests
# need are installed and the slow tier runs. Nothing runs twice.
#   scripts/test.sh            lint, fast tier, system packages, slow tier (what CI runs)
#   scripts/test.sh --fast     lint and the fast tier only
#   scripts/test.sh ARGS...    lint, system packages, then pytest with ARGS only
#                              (e.g. scripts/test.sh -m "not slow" -x, scripts/test.sh tests/x.py)
# Extra arguments after --fast go to the fast tier's pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [ "${1:-}" = --fast ]; then
  fast=1
  shift
fi
scripts/setup.sh requirements-test.txt
py=.venv/bin/python
$py -m ruff check .
$py -m ruff format --check .
$py -m deptry .   # every import pinned in requirements.txt, every pin used
.venv/bin/lint-imports --no-cache --no-logo   # the layers: runner over lib, the groups in each (pyproject.toml)

# Two test processes (pytest-xdist; tests/conftest.py keeps each module, and the Docker modules
# together, in one of them): about half of one process's time is waiting on kernels, servers
# and image builds. TEST_PROCESSES=0 runs them in this process.
xdist=(-n "${TEST_PROCESSES:-2}" --dist loadfile)

# One tier (fast or slow), then a line with its wall time; its status is the script's.
tier() {
  local name=$1 start=$SECONDS status=0
  shift
  $py -m pytest "${xdist[@]}" --tier "$name" "$@" || status=$?
  echo "scripts/test.sh: the $name tier took $((SECONDS - start)) s (pytest exit $status)"
  return "$status"
}

if [ "$fast" = 1 ]; then
  tier fast --durations=10 "$@"
  exit
fi
if [ $# -gt 0 ]; then
  scripts/system_packages.sh
  exec $py -m pytest "${xdist[@]}" --durations=25 "$@"
fi
tier fast --durations=10
scripts/system_packages.sh
tier slow --durations=25   # the slowest tests are listed
