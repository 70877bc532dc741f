#!/usr/bin/env bash
# The main job, from a fresh machine: set up .venv, get the aclImdb data, then the pipeline
# (prep -> train), which re-runs only the stages whose inputs changed: a second run right
# after the first says that every stage is up to date.
# Tracking goes to the local MLflow store (mlflow.db and mlartifacts/ in the project root).
# ACLIMDB_SOURCE=/path/or/url to use a local copy of the archive instead of downloading it.
# Extra arguments go to the pipeline, e.g. scripts/main.sh -p train.epochs 2
# (or --stages prep,train,tune, --force train; see python -m runner pipeline --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
py=.venv/bin/python
$py -m runner fetch-data ${ACLIMDB_SOURCE:+--source "$ACLIMDB_SOURCE"}
exec $py -m runner pipeline "$@"
