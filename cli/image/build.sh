#!/usr/bin/env bash
# Builds rbuild's own image with rbuild: rbuild linked statically (it keeps working when
# the container isolation has replaced the container's libraries by an image's), Debian's
# CA certificates and busybox-static (a shell for CI jobs), under /rbuild in a context next
# to cli/image/Dockerfile; then `rbuild build -t NAME` with the other arguments (for
# example --push, -o type=docker,dest=rbuild.tar, or --root STORE before `build`: give
# RBUILD_ROOT=STORE for that).
# Usage: cli/image/build.sh [NAME] [RBUILD-BUILD-FLAG...]   (NAME defaults to rbuild:VERSION)
# PROFILE=debug makes a debug build (faster to make, for tests). Needs ca-certificates and
# busybox-static, uidmap and setcap (libcap2-bin).
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
# newuidmap and newgidmap give a normal user's rbuild the subordinate ids of /etc/subuid
# and /etc/subgid: the user `build` (1000) has 65536 of each. They are Debian's (package
# uidmap), with the shared libraries they load at the same paths, but with file
# capabilities instead of set-user-ID root (as Fedora ships them): run as root without
# CAP_SYS_ADMIN (Docker's default), the kernel refuses them the maps of a namespace the
# user owns. A tar carries the capabilities (ADD keeps them).
caps=(newuidmap cap_setuid,cap_setfcap=ep newgidmap cap_setgid=ep)
mkdir -p "$ctx/idmap/usr/bin"
for i in 0 2; do
  helper="${caps[$i]}"
  [ -x "/usr/bin/$helper" ] || { echo "build.sh: needs Debian's uidmap (/usr/bin/$helper)" >&2; exit 1; }
  cp "/usr/bin/$helper" "$ctx/idmap/usr/bin/$helper"
  chmod 0755 "$ctx/idmap/usr/bin/$helper"
  setcap "${caps[$((i + 1))]}" "$ctx/idmap/usr/bin/$helper"
  for lib in $(ldd "/usr/bin/$helper" | grep -o '/[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
done
tar --xattrs --xattrs-include=security.capability --owner=0 --group=0 --numeric-owner \
  -C "$ctx/idmap" -cf "$ctx/idmap.tar" usr
rm -rf "$ctx/idmap"
# The user's home: the Dockerfile gives it to the user (a context's owners do not carry).
mkdir -p "$r/home" "$ctx/home/build"
printf 'root:x:0:0:root:/root:/rbuild/busybox/sh\nbuild:x:1000:1000:build:/home/build:/rbuild/busybox/sh\nnobody:x:65534:65534:nobody:/nonexistent:/rbuild/busybox/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nbuild:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
echo 'build:100000:65536' >"$r/etc/subuid"
echo 'build:100000:65536' >"$r/etc/subgid"
"$binary" ${RBUILD_ROOT:+--root "$RBUILD_ROOT"} build -t "$name" "$@" "$ctx"
