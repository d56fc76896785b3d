#!/usr/bin/env bash
# Fuzzes what enters the store from outside: `load` of archives, layers applied onto a
# directory, manifest and config JSON read from the store. Needs cargo-fuzz (`cargo
# install cargo-fuzz`), a nightly toolchain, busybox-static, umoci and skopeo (for the
# seeds). Usage: builder/fuzz/run.sh [SECONDS_PER_TARGET] (default 600). Crashes land in
# builder/fuzz/artifacts/<target>/; copy each into builder/fuzz/regressions/<target>/ so
# that builder/tests/tests.rs replays it forever after.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-600}"
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
bash "$root/testdata/images/make-busybox.sh" "$seeds/images" >/dev/null
mkdir -p "$here/corpus/load" "$here/corpus/apply" "$here/corpus/image_json"
cp "$seeds/images/busybox-oci.tar" "$seeds/images/busybox-docker.tar" "$here/corpus/load/"
cp "$root/testdata/hostile/wrong-digest.oci-archive" "$here/corpus/load/"
gzip -c "$seeds/images/busybox-docker.tar" > "$here/corpus/load/busybox-docker.tar.gz"
cp "$root"/testdata/hostile/*.tar "$root"/testdata/hostile/*.tar.gz "$here/corpus/apply/"
small="$seeds/small.tar"
tar -C "$root/testdata/examples" -cf "$small" .
cp "$small" "$here/corpus/apply/"
gzip -c "$small" > "$here/corpus/apply/small.tar.gz"
zstd -q -c "$small" > "$here/corpus/apply/small.tar.zst"
# The busybox image's manifest and config, joined by a 0xFF byte.
layout="$seeds/images/layout"
manifest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$layout/index.json")"
config="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"].split(":")[1])' "$layout/blobs/sha256/$manifest")"
{ cat "$layout/blobs/sha256/$manifest"; printf '\377'; cat "$layout/blobs/sha256/$config"; } > "$here/corpus/image_json/busybox"
cd "$here"
for target in load apply image_json; do
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=1048576 -timeout=20 -rss_limit_mb=4096
done
