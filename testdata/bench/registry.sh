#!/usr/bin/env bash
# Push and pull of a 5-layer, ~200 MB image to and from a local docker-registry, rbuild
# side by side with `skopeo copy` in the same run. Prints medians of RUNS runs (3) and
# the ratios (rbuild / skopeo: below 1 means rbuild is faster). rbuild's pull writes into
# its store and unpacks every layer into its snapshot, ready to run (as docker's pull
# does); it is compared with `skopeo copy` to an OCI layout alone and with `skopeo copy`
# followed by `umoci unpack`. Every push goes to a new repository, so nothing is skipped.
# Storage is moved aside between runs (testdata/bench/trash.sh). Root (umoci unpack keeps
# owners). Usage: testdata/bench/registry.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
runs="${RUNS:-3}"
export PATH="$HOME/.cargo/bin:$PATH"
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
mkdir -p "$work"

# Each run gets a new registry (new port, empty storage), so that neither tool can skip
# or mount a blob it pushed in an earlier run.
# shellcheck source=/dev/null
. "$root/testdata/registry.sh"
REGISTRY_PID=""
start_registry() {
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null || true
  serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
  host="$REGISTRY"
}
TRASH="$work/trash"
# shellcheck source=testdata/bench/trash.sh
. "$root/testdata/bench/trash.sh"
trap '[ -n "$REGISTRY_PID" ] && kill $REGISTRY_PID 2>/dev/null; empty_trash' EXIT
wait_for_quiet_inodes

layout="$work/layout"
if [ ! -f "$layout/index.json" ]; then
  echo "making a 5-layer image in $layout"
  python3 - "$layout" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
rng = random.Random(11)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
layers, diff_ids = [], []
for i in range(5):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for j in range(8):
            data = rng.randbytes(4608 << 10) + bytes(512 << 10)  # ~40 MB a layer, barely compressible
            t = tarfile.TarInfo(f"layer{i}/file{j}"); t.size = len(data); t.mtime = 0
            tar.addfile(t, io.BytesIO(data))
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    d, n = put(gzip.compress(raw, compresslevel=1, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cd, cn = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": layers}).encode()
md, mn = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
    "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
fi
echo "image: $(du -sh "$layout/blobs" | cut -f1) in 5 layers"
store="$work/store"
discard "$store"
(cd "$layout" && tar -cf "$work/image.tar" .)
"$rbuild" --root "$store" load -q -i "$work/image.tar"
# The archive names the image only by a bare tag, so it loads untagged: name it.
"$rbuild" --root "$store" tag "$("$rbuild" --root "$store" images -q | head -1)" bench:1

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

push_rb=(); push_sk=(); pull_rb=(); pull_sk=(); pull_sku=()
skopeo_pull_unpack() {
  skopeo copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:bench" && umoci unpack --image "$2:bench" "$3"
}
for i in $(seq "$runs"); do
  start_registry
  push_rb+=("$(timeit "$rbuild" --root "$store" push -q bench:1 "$host/rb$i/bench:1")")
  push_sk+=("$(timeit skopeo copy --quiet --dest-tls-verify=false "oci:$layout:bench" "docker://$host/sk$i/bench:1")")
  discard "$work/pull-store"; discard "$work/pull-oci"; discard "$work/pull-bundle"
  pull_rb+=("$(timeit "$rbuild" --root "$work/pull-store" pull -q "$host/rb$i/bench:1")")
  pull_sk+=("$(timeit skopeo copy --quiet --src-tls-verify=false "docker://$host/sk$i/bench:1" "oci:$work/pull-oci:bench")")
  discard "$work/pull-oci"
  pull_sku+=("$(timeit skopeo_pull_unpack "$host/sk$i/bench:1" "$work/pull-oci" "$work/pull-bundle")")
done
m() { printf '%s\n' "$@" | median; }
prb=$(m "${push_rb[@]}"); psk=$(m "${push_sk[@]}"); lrb=$(m "${pull_rb[@]}"); lsk=$(m "${pull_sk[@]}")
lsku=$(m "${pull_sku[@]}")
echo "single runs, s: rbuild push ${push_rb[*]} | skopeo push ${push_sk[*]} | rbuild pull ${pull_rb[*]} | skopeo pull ${pull_sk[*]} | skopeo pull + umoci unpack ${pull_sku[*]}"
printf '%-36s %6.2f s\n' "rbuild push" "$prb" "skopeo copy (push)" "$psk" \
  "rbuild pull (into store, unpacked)" "$lrb" "skopeo copy (pull)" "$lsk" \
  "skopeo copy + umoci unpack" "$lsku"
echo
echo "ratios (rbuild / peer; below 1: rbuild is faster)"
printf 'push                                %.2f\n' "$(echo "$prb / $psk" | bc -l)"
printf 'pull / skopeo copy                  %.2f\n' "$(echo "$lrb / $lsk" | bc -l)"
printf 'pull / skopeo copy + umoci unpack   %.2f\n' "$(echo "$lrb / $lsku" | bc -l)"
