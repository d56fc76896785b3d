#!/usr/bin/env bash
# Runs rbuild's whole test suite: installs the reference parser the differential tests
# compare against (a Python virtual environment; needs python3 with venv and the PyPI
# registry), then every test of every crate. The shared corpus must be at ../shared/corpus
# (or RBUILD_CORPUS). Ends with one line that sums up every test binary:
# "tests: N passed, N failed". Exit status: cargo test's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
bash testdata/reference/setup.sh
# A rootless sandbox's default network (slirp4netns) opens /dev/net/tun as a normal user:
# give the device the mode distributions' device rules give it (some VMs leave it 0600).
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
