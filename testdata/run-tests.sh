#!/usr/bin/env bash
# Runs rbuild's whole test suite: installs the Debian packages it needs when some are
# missing (testdata/test-packages.txt; as root), the reference parser the differential
# tests compare against (a Python virtual environment, from PyPI), then every test of
# every crate. The shared corpus must be at ../shared/corpus
# (or RBUILD_CORPUS). Then the library's build cases again as an unprivileged user
# (testdata/lib-cases-rootless.sh), the differential suite against BuildKit
# (testdata/differential/run.sh and apt.sh, root), rbuild inside containers
# (testdata/in-container/run.sh, root), the seeds' database walk-through
# (testdata/examples/percona/run.sh, root) and the length of every library function
# (testdata/function-lengths.py). Ends with one line that sums up every test binary:
# "tests: N passed, N failed". Exit status: cargo test's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# The Debian packages the tests need (testdata/test-packages.txt), when some are missing.
mapfile -t packages < <(grep -v '^#' testdata/test-packages.txt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root to install ${missing[*]}, or install them first" >&2; exit 1; }
  bash testdata/apt-install.sh "${missing[@]}"
fi
bash testdata/reference/setup.sh
# A rootless sandbox's default network (slirp4netns) opens /dev/net/tun as a normal user:
# give the device the mode distributions' device rules give it (some VMs leave it 0600).
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary does not hide the others (the summary counts all).
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The library build cases once more as an unprivileged user, within 30 s: they need
# neither root nor a sandbox (builder/tests/cases/).
if [ "$status" = 0 ]; then
  set +e
  bash testdata/lib-cases-rootless.sh 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  set -e
fi
# The differential suite: every case built by rbuild and by BuildKit v0.13, the images
# compared file by file (testdata/differential/; root). Its count joins the summary.
if [ "$status" = 0 ]; then
  set +e
  bash testdata/differential/run.sh 2>&1 | tee "$log.differential"
  status=${PIPESTATUS[0]}
  set -e
  awk '/^differential: / { printf "test result: differential. %d passed; %d failed\n", $2, $4 }' \
    "$log.differential" >>"$log"
  rm -f "$log.differential"
fi
# The same for an apt-get install on a Debian base, apart from build-to-build noise.
if [ "$status" = 0 ]; then
  if bash testdata/differential/apt.sh; then
    echo "test result: apt comparison. 1 passed; 0 failed" >>"$log"
  else
    echo "test result: apt comparison. 0 passed; 1 failed" >>"$log"
    status=1
  fi
fi
# rbuild inside containers, as CI jobs run it (testdata/in-container/; root).
if [ "$status" = 0 ]; then
  if bash testdata/in-container/run.sh; then
    echo "test result: in-container. 1 passed; 0 failed" >>"$log"
  else
    echo "test result: in-container. 0 passed; 1 failed" >>"$log"
    status=1
  fi
fi
# The seeds' walk-through: a database image built, served with run -d -p, its data kept
# across stop and start (testdata/examples/percona/; root, the Debian mirror).
if [ "$status" = 0 ]; then
  if PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')" \
    RBUILD="$PWD/target/debug/rbuild" bash testdata/examples/percona/run.sh; then
    echo "test result: percona example. 1 passed; 0 failed" >>"$log"
  else
    echo "test result: percona example. 0 passed; 1 failed" >>"$log"
    status=1
  fi
fi
# No function of the library crates over 120 lines (the engine stays readable).
if [ "$status" = 0 ]; then
  python3 testdata/function-lengths.py 120 builder/src registry-client/src || status=1
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
