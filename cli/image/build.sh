#!/usr/bin/env bash
# Builds rbuild's own image with rbuild: a release build of rbuild, the shared libraries
# it links (found with ldd) and Debian's CA certificates, put in a context next to
# cli/image/Dockerfile, then `rbuild build -t NAME`. Extra arguments go to rbuild build
# (for example --push, -o type=docker,dest=rbuild.tar, or --root STORE).
# Usage: cli/image/build.sh [NAME] [RBUILD-BUILD-FLAG...]   (NAME defaults to rbuild:VERSION)
# PROFILE=debug uses a debug build (faster to make, for tests).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
name="${1:-rbuild:$version}"
shift || true
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  (cd "$root" && cargo build --quiet --release -p rbuild)
else
  (cd "$root" && cargo build --quiet -p rbuild)
fi
binary="$root/target/$profile/rbuild"
[ -s /etc/ssl/certs/ca-certificates.crt ] || { echo "build.sh: needs Debian's ca-certificates" >&2; exit 1; }
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/root"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0700 "$ctx/rootfs/root"
cp "$binary" "$ctx/rootfs/usr/local/bin/rbuild"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
# Every shared library ldd names (absolute paths), at the same path in the image.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
# Users the image knows: root, and nobody for builds that drop to it.
printf 'root:x:0:0:root:/root:/usr/local/bin/rbuild\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
"$binary" build -t "$name" "$@" "$ctx"
