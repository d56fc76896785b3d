#!/usr/bin/env bash
# Peak memory of rbuild builds whatever the context's size (issue 19's goal: at most 100 MB
# for any build). Two contexts: "large", build.sh's shape (30,000 files, ~500 MB), and
# "huge", 5 GB (20,000 small files and five 1 GB files). Each is built with a Dockerfile
# that copies the whole context and runs over it: cold (empty store), no-op, one small
# file changed (the whole context is copied again: one COPY). Prints every build's wall time and
# peak resident memory (GNU time's maximum RSS of the rbuild process) and the highest.
# Root (RUN steps run in the sandbox); the busybox base comes from make-busybox.sh.
# Needs ~30 GB free under WORKDIR (the huge context, and two 5 GB layers kept as blob
# and snapshot). Usage: testdata/bench/memory.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$root/.cache/bench-memory}"
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x /usr/bin/time ] || bash "$root/testdata/apt-install.sh" time
command -v busybox >/dev/null || bash "$root/testdata/apt-install.sh" busybox-static
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
mkdir -p "$work"
TRASH="$work/trash"
# shellcheck source=testdata/bench/trash.sh
. "$root/testdata/bench/trash.sh"
trap empty_trash EXIT
[ -f "$work/images/busybox-oci.tar" ] || bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null

make_context() { # DIR SMALL_DIRS BIG_FILES: SMALL_DIRS x 100 files of 1-32 KB, BIG_FILES x 1 GB
  [ -f "$1/Dockerfile" ] && return 0
  mkdir -p "$1"
  python3 - "$@" <<'PY'
import os, random, sys
root, dirs, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(11)
for d in range(dirs):
    os.makedirs(f"{root}/src/m{d:03}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/src/m{d:03}/f{f:03}.dat", "wb") as out:
            out.write(rng.randbytes(rng.randrange(1000, 32000)))
for i in range(big):
    with open(f"{root}/big{i}.bin", "wb") as out:
        for _ in range(1024):
            out.write(rng.randbytes(1 << 20))
PY
  cat >"$1/Dockerfile" <<'DF'
FROM busybox:latest
WORKDIR /ctx
COPY . .
RUN du -s /ctx > /size && find /ctx -type f | wc -l > /count
RUN head -c 1000000 /ctx/src/m000/f000.dat | md5sum > /sum
CMD ["cat", "/size", "/count"]
DF
}
make_context "$work/ctx-large" 300 0
make_context "$work/ctx-huge" 200 5
echo "large: $(du -sh "$work/ctx-large" | cut -f1), huge: $(du -sh "$work/ctx-huge" | cut -f1)"

highest=0
build() { # NAME CONTEXT: one build, its time and peak memory printed
  local out="$work/last.log" t0 t1 rss
  sync
  t0=$(date +%s%N)
  if ! /usr/bin/time -f '%M' -o "$work/rss" "$rbuild" --root "$store" build --progress plain -t mem "$2" >"$out" 2>&1; then
    echo "failed: $1" >&2; tail -30 "$out" >&2; exit 1
  fi
  t1=$(date +%s%N)
  rss=$(tail -1 "$work/rss")
  [ "$rss" -gt "$highest" ] && highest=$rss
  printf '%-28s %8d ms %6d MB\n' "$1" $(( (t1 - t0) / 1000000 )) $(( rss / 1024 ))
}
for ctx in large huge; do
  dir="$work/ctx-$ctx"
  store="$work/store"
  discard "$store"
  "$rbuild" --root "$store" load -q -i "$work/images/busybox-oci.tar" >/dev/null
  small_file="$dir/src/m007/f042.dat"
  cp -p "$small_file" "$work/small.orig"
  build "$ctx cold" "$dir"
  build "$ctx no-op" "$dir"
  echo "changed $(date +%s%N)" >>"$small_file"
  build "$ctx small file changed" "$dir"
  cp -p "$work/small.orig" "$small_file"
  # Deleted now, not at the end, to make room for the next context's store (this
  # script measures memory: the times after a large deletion are slower, see trash.sh).
  discard "$store"
  empty_trash
done
echo "highest peak memory: $((highest / 1024)) MB"
