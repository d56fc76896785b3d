#!/usr/bin/env bash
# Builds rbuild's own image with rbuild: rbuild linked statically (it keeps working when
# the container isolation has replaced the container's libraries by an image's), Debian's
# CA certificates and busybox-static (a shell for CI jobs), under /rbuild in a context next
# to cli/image/Dockerfile; then `rbuild build -t NAME` with the other arguments (for
# example --push, -o type=docker,dest=rbuild.tar, or --root STORE before `build`: give
# RBUILD_ROOT=STORE for that).
# Usage: cli/image/build.sh [NAME] [RBUILD-BUILD-FLAG...]   (NAME defaults to rbuild:VERSION)
# PROFILE=debug makes a debug build (faster to make, for tests). Needs ca-certificates and
# busybox-static.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
name="${1:-rbuild:$version}"
shift || true
profile="${PROFILE:-release}"
target=x86_64-unknown-linux-gnu
flags=(--quiet -p rbuild --target "$target")
[ "$profile" = release ] && flags+=(--release)
(cd "$root" && RUSTFLAGS="-C target-feature=+crt-static" cargo build "${flags[@]}")
binary="$root/target/$target/$profile/rbuild"
[ -s /etc/ssl/certs/ca-certificates.crt ] || { echo "build.sh: needs Debian's ca-certificates" >&2; exit 1; }
busybox="$(command -v busybox)" || { echo "build.sh: needs busybox-static" >&2; exit 1; }
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
r="$ctx/rootfs"
mkdir -p "$r/rbuild/bin" "$r/rbuild/certs" "$r/rbuild/busybox" "$r/tmp" "$r/root" "$r/etc"
chmod 1777 "$r/tmp"
chmod 0700 "$r/root"
cp "$binary" "$r/rbuild/bin/rbuild"
cp /etc/ssl/certs/ca-certificates.crt "$r/rbuild/certs/"
cp "$busybox" "$r/rbuild/busybox/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$r/rbuild/busybox/$applet"
done
printf 'root:x:0:0:root:/root:/rbuild/busybox/sh\nnobody:x:65534:65534:nobody:/nonexistent:/rbuild/busybox/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
"$binary" ${RBUILD_ROOT:+--root "$RBUILD_ROOT"} build -t "$name" "$@" "$ctx"
