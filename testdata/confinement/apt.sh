#!/usr/bin/env bash
# A Debian build with apt-get on rbuild's default network: makes a Debian 12 base image
# with testdata/images/make-debian.sh (debootstrap minbase; the root file system is kept
# in .cache/debian-bookworm-minbase.tar for later runs), then builds
#   FROM debian-base
#   RUN apt-get update && apt-get install -y --no-install-recommends curl && curl --version
# with the default network (a private network namespace through slirp4netns, under the
# seccomp filter) and checks that curl is in the image.
# Usage (root): apt.sh [RBUILD]   (default: target/debug/rbuild). Needs debootstrap.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rbuild="${1:-$repo/target/debug/rbuild}"
[ "$(id -u)" = 0 ] || { echo "apt.sh: needs root (debootstrap, the sandbox)" >&2; exit 1; }
cache="$repo/.cache"
base_tar="$cache/debian-bookworm-minbase.tar"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash "$repo/testdata/images/make-debian.sh" "$base_tar"
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
