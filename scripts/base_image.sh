#!/usr/bin/env bash
# Builds a stand-in for the base image python:3.11.14-slim-bookworm from Debian's packages,
# for the offline tests only: no image registry is reachable from the test machines, so the
# real image cannot be pulled. Does nothing when an image of that name is already present
# (a pulled real one is always preferred). The Dockerfiles are unchanged by it: they name the
# real image, as a user builds them against the registry.
#
# The stand-in: a debootstrap of bookworm (minbase) with python3, python3-venv and
# ca-certificates; `python` on PATH; the host's CA bundle, so that pip inside a build trusts
# what the host trusts (a TLS-intercepting proxy's CA, say); apt lists cleaned. Its Python is
# Debian's 3.11 (3.11.2, not 3.11.14), with the real slim image's apt and dpkg settings.
#
# Usage: scripts/base_image.sh [IMAGE]   (as root; needs debootstrap and a Docker engine)
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

IMAGE="${1:-python:3.11.14-slim-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA=/etc/ssl/certs/ca-certificates.crt

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is present; nothing to build"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
  echo "error: debootstrap is missing; install it with scripts/system_packages.sh" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || {
  echo "error: debootstrap needs root; run scripts/base_image.sh as root" >&2
  exit 1
}
[ -s "$HOST_CA" ] || {
  echo "error: the host's CA bundle $HOST_CA is missing; install ca-certificates" >&2
  exit 1
}

rootfs="$(mktemp -d /var/tmp/base-image.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

start=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$MIRROR"

# The same suites as the real image's apt sources, so that a Dockerfile's apt-get finds
# the same packages (tini) with their security updates.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# The real image's apt and dpkg settings (Debian's docker images, "slim" variant): no
# package caches or translations kept, no documentation, man pages or locales installed.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' \
  >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/*
# The real image has python in /usr/local/bin.
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
# Kept as a local CA too, so that a later update-ca-certificates in a build keeps it.
cp "$HOST_CA" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$HOST_CA" "$rootfs/usr/local/share/ca-certificates/host-bundle.crt"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log

tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
  --change 'LABEL org.opencontainers.image.description="Stand-in for python:3.11.14-slim-bookworm, built from Debian packages by scripts/base_image.sh for the offline tests only"' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
docker run --rm "$IMAGE" python -c "import ssl, venv, sys; print('stand-in', sys.version.split()[0])"
echo "built $IMAGE in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
