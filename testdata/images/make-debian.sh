#!/usr/bin/env bash
# Makes a Debian 12 root file system with debootstrap (--variant=minbase bookworm, from
# $DEBIAN_MIRROR or deb.debian.org; apt's package lists and downloaded packages removed)
# and writes it as one tar, OUT. Does nothing when OUT exists already (a cache). Root.
# Usage: make-debian.sh OUT.tar. Needs debootstrap.
set -euo pipefail
out="${1:?usage: make-debian.sh OUT.tar}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -s "$out" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "make-debian.sh: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "make-debian.sh: needs debootstrap (Debian package debootstrap)" >&2; exit 1; }
host="$(echo "$mirror" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')"
if ! timeout 60 bash -c "exec 3<>/dev/tcp/$host/80" 2>/dev/null; then
  echo "make-debian.sh: the Debian mirror $host cannot be reached from this machine" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== debootstrap --variant=minbase bookworm ($mirror)" >&2
timeout 900 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
mkdir -p "$(dirname "$out")"
tar -C "$work/rootfs" -cf "$out.tmp" .
mv "$out.tmp" "$out"
