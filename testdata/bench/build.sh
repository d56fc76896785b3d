#!/usr/bin/env bash
# Whole builds, rbuild side by side with buildah (overlay storage, runc) and today's
# BuildKit (v0.13 in docker 26.1, from Debian 13's packages, unpacked as
# testdata/differential/peer.sh does), in the same run on the same contexts:
#   small: ../shared/peers/bench.Dockerfile (ENV, WORKDIR, COPY of 2,000 small files, COPY
#          of a 50 MB file, three RUNs, EXPOSE, LABEL, CMD)
#   large: a 500 MB context of 30,000 files and a 15-step Dockerfile of this script's own
# Phases: cold (empty storage), no-op rebuild, one context file changed. Prints medians of
# RUNS runs (3) in seconds and the ratios rbuild / peer (below 1: rbuild is faster), and
# keeps every run's output and time in WORKDIR/logs/<start time>/.
# Storage is never deleted between measured runs (testdata/bench/trash.sh says why).
# The busybox base image is served by docker-registry on a free loopback port. Root only;
# installs buildah and docker.io when missing. TOOLS="rbuild buildkit" picks the tools
# (default: all three). Usage: testdata/bench/build.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$root/.cache/bench-build}"
runs="${RUNS:-3}"
tools="${TOOLS:-rbuild buildah buildkit}"
want() { case " $tools " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/bin/docker ] || need+=(docker.io)
for t in docker-registry skopeo umoci busybox slirp4netns; do command -v $t >/dev/null || need+=("$t"); done
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then
  bash "$root/testdata/apt-install.sh" "${need[@]/busybox/busybox-static}"
fi
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
# shellcheck source=testdata/differential/peer.sh
. "$root/testdata/differential/peer.sh"
if want buildkit; then ensure_docker26; fi
mkdir -p "$work"
logs="$work/logs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$logs"

stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  dockerd_pid=""
}
# shellcheck source=testdata/bench/timing.sh
. "$root/testdata/bench/timing.sh"
# measure_kept VAR CMD...: measure, with every run's output and time kept in $logs, to
# look into outliers.
measure_kept() {
  local var=$1
  shift
  measure "$var" "$work/last.log" "$@"
  local all="${!var}"
  {
    echo "# $(( ${all##* } / 1000 )) ms: $*"
    cat "$work/last.log"
    # rbuild's own account of each step's time (not measured).
    if [ "$1" = "$rbuild" ]; then "$1" "$2" "$3" history bench; fi
  } >"$logs/$(now)-$var.log"
}

# The base image, in a registry every tool pulls from.
# shellcheck source=/dev/null
. "$root/testdata/registry.sh"
serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
registry="$REGISTRY"
dockerd_pid=""
TRASH="$work/trash"
# shellcheck source=testdata/bench/trash.sh
. "$root/testdata/bench/trash.sh"
cleanup() {
  kill "$REGISTRY_PID" 2>/dev/null || true
  stop_dockerd
  empty_trash
}
trap cleanup EXIT
wait_for_quiet_inodes
[ -f "$work/images/busybox-oci.tar" ] || bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/images/busybox-oci.tar" "docker://$registry/busybox:latest"

# The contexts.
small="$work/ctx-small"
if [ ! -f "$small/big.bin" ]; then
  mkdir -p "$small"
  python3 - "$small" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for d in range(20):
    os.makedirs(f"{root}/files/d{d:02}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/files/d{d:02}/f{f:03}.txt", "w") as out:
            out.write(f"file {d}/{f}\n" + "x" * rng.randrange(100, 2000) + "\n")
with open(f"{root}/big.bin", "wb") as out:
    out.write(os.urandom(50 << 20))
PY
fi
sed "s|127.0.0.1:5000|$registry|" "$root/../shared/peers/bench.Dockerfile" >"$small/Dockerfile"
large="$work/ctx-large"
if [ ! -f "$large/Dockerfile" ]; then
  mkdir -p "$large"
  python3 - "$large" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(9)
for part in ("src", "assets", "vendor"):
    for d in range(100):
        os.makedirs(f"{root}/{part}/m{d:03}", exist_ok=True)
        for f in range(100):
            size = rng.randrange(1000, 32000)
            with open(f"{root}/{part}/m{d:03}/f{f:03}.dat", "wb") as out:
                out.write(os.urandom(size))
PY
fi
cat >"$large/Dockerfile" <<DF
FROM $registry/busybox:latest
ENV APP=/srv/app MODE=bench
WORKDIR /srv/app
COPY vendor/ vendor/
RUN find vendor -type f | wc -l > /srv/vendor-count
COPY assets/ assets/
RUN du -s assets > /srv/assets-size
COPY src/ src/
RUN cat src/m000/f000.dat | md5sum > /srv/checksum
RUN mkdir -p /srv/build && cp -r src/m00* /srv/build/
RUN dd if=/dev/zero of=/srv/zeros bs=1M count=10 2>/dev/null
RUN rm -rf vendor/m05*
USER nobody
LABEL org.example.bench=large
CMD ["ls", "/srv"]
DF
changed_small="$small/files/d05/f007.txt"
changed_large="$large/src/m050/f050.dat"
cp -p "$changed_small" "$work/small.orig"
cp -p "$changed_large" "$work/large.orig"
restore() { cp -p "$work/small.orig" "$changed_small"; cp -p "$work/large.orig" "$changed_large"; }
# Every tool reads the contexts from the page cache, the first one too.
find "$small" "$large" -type f -exec cat {} + >/dev/null

# Each tool: cold (fresh storage), no-op, one file changed, RUNS times each.
bench_tool() { # name cold_reset build_cmd... (the context directory is the last word)
  local name=$1 reset=$2; shift 2
  for scen in small large; do
    local ctx; [ $scen = small ] && ctx=$small || ctx=$large
    local f; [ $scen = small ] && f=$changed_small || f=$large/src/m050/f050.dat
    local cold="" noop="" change=""
    restore
    for _ in $(seq "$runs"); do $reset; measure_kept cold "$@" "$ctx"; done
    for _ in $(seq "$runs"); do measure_kept noop "$@" "$ctx"; done
    for r in $(seq "$runs"); do echo "change $r $(now)" >>"$f"; measure_kept change "$@" "$ctx"; done
    restore
    echo "$name $scen $(echo "$cold" | median) $(echo "$noop" | median) $(echo "$change" | median)" | tee -a "$work/results.txt"
    echo "$name $scen single runs, ms: cold$(ms $cold) | no-op$(ms $noop) | changed$(ms $change)" | tee -a "$work/runs.txt"
  done
}
: >"$work/results.txt"
: >"$work/runs.txt"

rbuild_reset() { discard "$work/rbuild-store"; }
# Every tool's RUN steps use the host's network (BuildKit is given --network=host too).
want rbuild && bench_tool rbuild rbuild_reset "$rbuild" --root "$work/rbuild-store" build --network host --progress plain -t bench

# dockerd with its own containerd, as ../shared/peers/start-dockerd.sh does; a cold run
# restarts it on a fresh data root.
start_dockerd() {
  stop_dockerd
  discard "$work/docker-data"
  rm -rf "$work/docker-exec"
  mkdir -p "$work/docker-data" "$work/docker-exec"
  PATH="$PEER/root/usr/bin:$PEER/root/usr/sbin:$PATH" dockerd --host "unix://$work/docker.sock" --data-root "$work/docker-data" \
    --exec-root "$work/docker-exec" --pidfile "$work/docker-exec/dockerd.pid" \
    --iptables=false --ip6tables=false --bridge=none \
    --insecure-registry "$registry" --storage-driver overlay2 >>"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do
    DOCKER_HOST="unix://$work/docker.sock" /usr/bin/docker version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
if want buildkit && [ -x "$PEER/root/usr/sbin/dockerd" ] && start_dockerd; then
  export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=1
  docker_reset() { start_dockerd || { echo "dockerd did not restart" >&2; exit 1; }; }
  bench_tool buildkit docker_reset /usr/bin/docker build --progress=plain --network=host -t bench
elif want buildkit; then
  echo "buildkit: skipped, dockerd did not start here (see $work/dockerd.log)" | tee -a "$work/results.txt"
fi

# buildah last: it removes its build containers as it goes, and so frees many inodes.
buildah_reset() { discard "$work/buildah"; }
want buildah && bench_tool buildah buildah_reset buildah --root "$work/buildah/root" --runroot "$work/buildah/run" \
  --storage-driver overlay bud --layers --isolation oci --runtime runc --tls-verify=false -t bench

echo
cat "$work/runs.txt"
echo "medians of $runs runs, seconds; ratio = rbuild / peer (below 1: rbuild is faster)"
python3 "$root/testdata/bench/ratios.py" "$work/results.txt" cold no-op changed
