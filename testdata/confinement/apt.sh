#!/usr/bin/env bash
# A Debian build with apt-get on rbuild's default network: makes a Debian 12 base image
# with debootstrap (minbase, from deb.debian.org; the root file system is kept in
# .cache/debian-bookworm-minbase.tar for later runs), then builds
#   FROM debian-base
#   RUN apt-get update && apt-get install -y --no-install-recommends curl && curl --version
# with the default network (a private network namespace through slirp4netns, under the
# seccomp filter) and checks that curl is in the image.
# Usage (root): apt.sh [RBUILD]   (default: target/debug/rbuild). Needs debootstrap.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rbuild="${1:-$repo/target/debug/rbuild}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ "$(id -u)" = 0 ] || { echo "apt.sh: needs root (debootstrap, the sandbox)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "apt.sh: needs debootstrap (Debian package debootstrap)" >&2; exit 1; }
cache="$repo/.cache"
base_tar="$cache/debian-bookworm-minbase.tar"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ ! -s "$base_tar" ]; then
  mkdir -p "$cache"
  if ! timeout 60 bash -c "exec 3<>/dev/tcp/deb.debian.org/80" 2>/dev/null; then
    echo "apt.sh: the Debian mirror deb.debian.org cannot be reached from this machine" >&2
    exit 1
  fi
  echo "== debootstrap --variant=minbase bookworm ($mirror)"
  timeout 900 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$work/rootfs"
fi
store="$work/store"
mkdir -p "$work/base" "$work/app"
cp "$base_tar" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$work/base/Dockerfile"
echo "== rbuild -t debian-base (the debootstrap tree as an image)"
"$rbuild" --root "$store" build -q -t debian-base "$work/base"
cat > "$work/app/Dockerfile" <<'DOCKERFILE'
FROM debian-base
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && curl --version
DOCKERFILE
echo "== rbuild -t with-curl (apt-get on the default network)"
start=$(date +%s)
"$rbuild" --root "$store" build --progress plain -t with-curl "$work/app"
echo "== built in $(( $(date +%s) - start )) s"
version="$("$rbuild" --root "$store" run --rm --network none with-curl curl --version | head -1)"
case "$version" in
  curl\ *) echo "== the image has $version" ;;
  *) echo "apt.sh: curl is not in the image: $version" >&2; exit 1 ;;
esac
