#!/usr/bin/env bash
# The Debian packages the test suite needs beyond Python: a Docker engine (the images are
# built and run), debootstrap (the stand-in base image, scripts/base_image.sh), Chromium
# (JupyterLab driven by Playwright) and a PostgreSQL server (a shared Optuna storage).
# Installs what is missing when run as root; otherwise names what is missing and how to get it.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
