#!/usr/bin/env bash
# A Debian build with apt-get on rbuild's default network: makes a Debian 12 base image
# with testdata/images/make-debian.sh (debootstrap minbase; the root file system is kept
# in .cache/debian-bookworm-minbase.tar for later runs), then builds
#   FROM debian-base
#   RUN apt-get update && apt-get install -y --no-install-recommends curl && curl --version
# with the default network (a private network namespace through slirp4netns, under the
# seccomp filter) and checks that curl is in the image. Then the download cache: a
# --no-cache rebuild gets apt's indexes and packages from the store (only the release
# file from the mirror), and its files are those of a build without the cache.
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

echo "== --no-cache again: apt's files from the download cache"
"$rbuild" --root "$store" build --no-cache --progress json -t cached "$work/app" > "$work/cached.json"
grep '"event":"downloads"' "$work/cached.json" | tee "$work/downloads.json"
python3 - "$work/downloads.json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[0])
assert d["served"] >= 3, f"served from the cache: {d}"
assert d["fetched"] <= 2 and d["kept"] == 0, f"fetched again: {d}"
print(f"== served {d['served']} files ({d['served_bytes']} bytes) from the cache, fetched {d['fetched']}")
PY
echo "== --no-cache --network host: apt's files from the download cache too"
"$rbuild" --root "$store" build --no-cache --network host --progress json -t cached-host "$work/app" > "$work/host.json"
grep '"event":"downloads"' "$work/host.json" | grep -q '"kept":0' || { echo "apt.sh: no downloads from the cache with --network host" >&2; exit 1; }
echo "== --no-cache --download-cache=false: apt's files from the mirror"
"$rbuild" --root "$store" build --no-cache --download-cache=false --progress json -t direct "$work/app" > "$work/direct.json"
if grep -q '"event":"downloads"' "$work/direct.json"; then
  echo "apt.sh: --download-cache=false still used the cache" >&2; exit 1
fi
files='find /usr /var/lib/apt/lists /var/lib/dpkg -type f ! -name lock ! -name "*-old" | sort | xargs sha256sum'
"$rbuild" --root "$store" run --rm --network none cached sh -c "$files" > "$work/cached.files"
"$rbuild" --root "$store" run --rm --network none direct sh -c "$files" > "$work/direct.files"
if ! cmp -s "$work/cached.files" "$work/direct.files"; then
  echo "apt.sh: the files of the image differ with the download cache:" >&2
  diff "$work/cached.files" "$work/direct.files" | head -20 >&2; exit 1
fi
echo "== the same $(wc -l < "$work/cached.files") files with and without the download cache"
