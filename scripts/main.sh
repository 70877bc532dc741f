#!/usr/bin/env bash
# The main job, from a fresh machine: set up .venv, get the aclImdb data, prepare it, train.
# Tracking goes to the local MLflow store (mlflow.db and mlartifacts/ in the project root).
# ACLIMDB_SOURCE=/path/or/url to use a local copy of the archive instead of downloading it.
# Extra arguments go to the train stage, e.g. scripts/main.sh -p epochs 2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
py=.venv/bin/python
$py -m runner fetch-data ${ACLIMDB_SOURCE:+--source "$ACLIMDB_SOURCE"}
$py -m runner prep
$py -m runner train "$@"
