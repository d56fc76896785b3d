#!/usr/bin/env bash
# Start-to-exit time of `rbuild run IMAGE true`, side by side with `runc run` of the same
# root file system (the busybox image unpacked by umoci), 100 runs each, interleaved.
# Prints the medians and the ratio (rbuild / runc; goal at most 0.3). Needs root, umoci,
# skopeo, busybox-static and runc (installed here if missing).
# Usage: testdata/bench/run.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
runs="${RUNS:-100}"
command -v runc >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -qq runc >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
mkdir -p "$work"
[ -f "$work/images/busybox-oci.tar" ] || bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
rm -rf "$work/store" "$work/bundle"
"$rbuild" --root "$work/store" load -q -i "$work/images/busybox-oci.tar"
"$rbuild" --root "$work/store" run busybox true   # makes the layer snapshots once
umoci unpack --image "$work/images/layout:latest" "$work/bundle" >/dev/null
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
python3 - "$runs" "$rbuild" "$work" <<'PY'
import statistics, subprocess, sys, time
runs, rbuild, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def once(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
rb, rc = [], []
for i in range(runs):
    rb.append(once([rbuild, "--root", f"{work}/store", "run", "busybox", "true"]))
    rc.append(once(["runc", "run", "-b", f"{work}/bundle", f"rbuild-bench-{i}"]))
mrb, mrc = statistics.median(rb), statistics.median(rc)
print(f"rbuild run busybox true   median {mrb*1000:7.1f} ms over {runs} runs")
print(f"runc run (same rootfs)    median {mrc*1000:7.1f} ms over {runs} runs")
print(f"ratio (rbuild / runc; goal at most 0.3): {mrb/mrc:.2f}")
PY
