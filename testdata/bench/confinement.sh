#!/usr/bin/env bash
# What confinement costs per RUN: the default network (a private network namespace with
# slirp4netns) and the seccomp filter, side by side with --network host (the host's
# network; the filter is on in both), interleaved, medians and ratios:
#   - `rbuild run busybox true`, RUNS times per mode (default, host, none);
#   - a --no-cache build of 10 RUN steps, BUILDS times per mode (default, host).
# With OLD_RBUILD=PATH (an rbuild built before the filter and the private network, whose
# default was the host's network) its `run` and build are timed in the same rounds: the
# filter's own cost is the difference to `--network host`.
# Needs root, umoci, skopeo, busybox-static and slirp4netns.
# Usage: testdata/bench/confinement.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
runs="${RUNS:-100}"
builds="${BUILDS:-10}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v slirp4netns >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq slirp4netns >/dev/null
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
old="${OLD_RBUILD:-}"
mkdir -p "$work"
[ -f "$work/images/busybox-oci.tar" ] || bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
rm -rf "$work/store" "$work/old-store" "$work/ctx"
"$rbuild" --root "$work/store" load -q -i "$work/images/busybox-oci.tar"
"$rbuild" --root "$work/store" run busybox true   # makes the layer snapshots once
if [ -n "$old" ]; then
  "$old" --root "$work/old-store" load -q -i "$work/images/busybox-oci.tar"
  "$old" --root "$work/old-store" run busybox true
fi
mkdir -p "$work/ctx"
for i in $(seq 10); do echo "RUN echo step $i > /step$i"; done | sed '1i FROM busybox' > "$work/ctx/Dockerfile"
python3 - "$runs" "$builds" "$rbuild" "$work" "$old" <<'PY'
import statistics, subprocess, sys, time
runs, builds, rbuild, work, old = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def once(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t
run_modes = {
    "default (private network, filter)": [rbuild, "--root", f"{work}/store", "run", "busybox", "true"],
    "--network host (filter)": [rbuild, "--root", f"{work}/store", "run", "--network", "host", "busybox", "true"],
    "--network none (filter)": [rbuild, "--root", f"{work}/store", "run", "--network", "none", "busybox", "true"],
}
build_modes = {
    "default (private network, filter)": [rbuild, "--root", f"{work}/store", "build", "-q", "--no-cache", f"{work}/ctx"],
    "--network host (filter)": [rbuild, "--root", f"{work}/store", "build", "-q", "--no-cache", "--network", "host", f"{work}/ctx"],
}
if old:
    run_modes["old rbuild, host network, no filter"] = [old, "--root", f"{work}/old-store", "run", "busybox", "true"]
    build_modes["old rbuild, host network, no filter"] = [old, "--root", f"{work}/old-store", "build", "-q", "--no-cache", f"{work}/ctx"]
def measure(modes, n):
    times = {k: [] for k in modes}
    for _ in range(n):
        for k, cmd in modes.items():
            times[k].append(once(cmd))
    return {k: statistics.median(v) for k, v in times.items()}
r = measure(run_modes, runs)
b = measure(build_modes, builds)
host_r, host_b = r["--network host (filter)"], b["--network host (filter)"]
print(f"rbuild run busybox true, median of {runs}:")
for k, v in r.items():
    print(f"  {k:40s} {v*1000:8.1f} ms   ratio to --network host {v/host_r:5.2f}")
print(f"--no-cache build of 10 RUN steps, median of {builds}:")
for k, v in b.items():
    print(f"  {k:40s} {v*1000:8.1f} ms   ratio to --network host {v/host_b:5.2f}   per RUN {(v-host_b)/10*1000:+6.1f} ms")
PY
