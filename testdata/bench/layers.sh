#!/usr/bin/env bash
# Layer creation and extraction, rbuild's engine side by side with tar and pigz, on a
# ~1 GB tree (10,000 small files and a few large ones). Prints medians of RUNS runs (3),
# the ratios (rbuild / peer: below 1 means rbuild is faster) and rbuild's peak memory.
# Usage: testdata/bench/layers.sh [WORKDIR]. Installs pigz and time if missing (root).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
runs="${RUNS:-3}"
if ! command -v pigz >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq pigz time >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
(cd "$root" && cargo build --quiet --release -p rbuild-builder --example layer_tool)
tool="$root/target/release/examples/layer_tool"

tree="$work/tree"
if [ ! -d "$tree" ]; then
  echo "making the tree in $tree"
  mkdir -p "$tree"
  python3 - "$tree" <<'PY'
import os, sys, random
root = sys.argv[1]
rng = random.Random(7)
for d in range(100):
    os.makedirs(f"{root}/small/d{d:03}", exist_ok=True)
    for f in range(100):
        size = rng.randint(100, 16000)
        with open(f"{root}/small/d{d:03}/f{f:03}", "wb") as out:
            out.write(rng.randbytes(size // 2) + b"a" * (size - size // 2))
os.makedirs(f"{root}/large", exist_ok=True)
for i in range(4):
    with open(f"{root}/large/blob{i}", "wb") as out:
        for _ in range(230):  # 230 MiB each, half random, half text
            out.write(rng.randbytes(1 << 19) + b"0123456789abcdef" * (1 << 15))
PY
fi
echo "tree: $(du -sh "$tree" | cut -f1), $(find "$tree" -type f | wc -l) files"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # prints seconds of one run of "$@"
  local s e; sync; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
measure() { local label="$1"; shift; local t; t=$(for _ in $(seq "$runs"); do timeit "$@"; done | median); printf '%-34s %8.2f s\n' "$label" "$t" >&2; echo "$t"; }

cd "$work"
g_rb=$(measure "rbuild create (gzip)" "$tool" create "$tree" "$work/l.tgz" gzip)
g_peer=$(measure "tar -c | pigz" bash -c "tar -C '$tree' -cf - . | pigz -6 > '$work/p.tgz'")
z_rb=$(measure "rbuild create (zstd)" "$tool" create "$tree" "$work/l.tzst" zstd)
z_peer=$(measure "tar -c | zstd -T0" bash -c "tar -C '$tree' -cf - . | zstd -q -3 -T0 > '$work/p.tzst'")
"$tool" create "$tree" "$work/l.tar" none >/dev/null
x_rb=$(measure "rbuild apply (plain tar)" bash -c "rm -rf '$work/x' && mkdir '$work/x' && '$tool' apply '$work/l.tar' '$work/x'")
x_peer=$(measure "tar -x (plain tar)" bash -c "rm -rf '$work/y' && mkdir '$work/y' && tar -C '$work/y' -xf '$work/l.tar'")
xg_rb=$(measure "rbuild apply (gzip)" bash -c "rm -rf '$work/x' && mkdir '$work/x' && '$tool' apply '$work/l.tgz' '$work/x'")
xg_peer=$(measure "pigz -d | tar -x" bash -c "rm -rf '$work/y' && mkdir '$work/y' && pigz -dc '$work/l.tgz' | tar -C '$work/y' -xf -")
mem_c=$(/usr/bin/time -f %M "$tool" create "$tree" "$work/m.tgz" gzip 2>&1 >/dev/null | tail -1)
mem_a=$( (rm -rf "$work/x" && mkdir "$work/x" && /usr/bin/time -f %M "$tool" apply "$work/l.tgz" "$work/x") 2>&1 >/dev/null | tail -1)
echo
echo "ratios (rbuild / peer; below 1: rbuild faster)"
printf 'create gzip  %.2f\ncreate zstd  %.2f\napply tar    %.2f\napply gzip   %.2f\n' \
  "$(echo "$g_rb / $g_peer" | bc -l)" "$(echo "$z_rb / $z_peer" | bc -l)" \
  "$(echo "$x_rb / $x_peer" | bc -l)" "$(echo "$xg_rb / $xg_peer" | bc -l)"
echo "peak memory: create $((mem_c / 1024)) MB, apply $((mem_a / 1024)) MB"
