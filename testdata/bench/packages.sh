#!/usr/bin/env bash
# Real package builds, rbuild side by side with BuildKit v0.13 (docker 26.1 from Debian
# 13's packages, as testdata/differential/peer.sh unpacks it) and buildah (overlay, runc),
# in one run on the same contexts and the same base:
#   db:     the seeds' database server: Debian's mariadb-server with apt-get, a config file
#           and an init script copied in, a RUN that starts the server and loads the script;
#   python: a Python application: python3-venv from Debian, a virtual environment, pip
#           installing pinned packages from PyPI, the application copied and compiled;
#   c:      a build stage compiling a small C program with gcc and make, and a slim
#           runtime stage that copies the binary.
# The base, a Debian 12 minbase tree made by testdata/images/make-debian.sh (debootstrap),
# is served by docker-registry on a free loopback port to every tool. Each tool's RUN
# steps use the host's network (the same route to the mirrors for all).
# Phases: cold (empty storage), no-op rebuild, a --no-cache rebuild (every step runs again
# on warm storage: rbuild's apt gets its files from its download cache), one source file
# changed, and an import of the registry cache on empty storage (rbuild --cache-to/--cache-from type=registry;
# BuildKit's inline cache, as its docker driver offers; buildah --cache-to/--cache-from).
# Within each phase the tools take turns run by run, so that they meet the machine alike.
# Prints every run, the medians of RUNS runs (3) in seconds and the ratios rbuild / peer,
# and for each rbuild step of the last cold and changed builds the command's own time and
# what rbuild added around it (sandbox start, waiting for the layer below, commit; the
# layer's tar, digest and sync run beside the next step and are shown apart).
# Storage is moved aside between runs and deleted at the end (testdata/bench/trash.sh).
# Needs root and the Debian mirror and PyPI. TOOLS="rbuild buildkit" picks tools
# (default: all three); SCENARIOS="db c" picks scenarios.
# Usage: testdata/bench/packages.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$root/.cache/bench-packages}"
runs="${RUNS:-3}"
tools="${TOOLS:-rbuild buildkit buildah}"
scenarios="${SCENARIOS:-db python c}"
want() { case " $tools " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
for t in docker-registry skopeo debootstrap runc python3; do command -v $t >/dev/null || need+=("$t"); done
[ -x /usr/bin/docker ] || need+=(docker.io)
want buildah && ! command -v buildah >/dev/null && need+=(buildah)
[ ${#need[@]} -eq 0 ] || bash "$root/testdata/apt-install.sh" "${need[@]}"
(cd "$root" && cargo build --quiet --release -p rbuild)
rbuild="$root/target/release/rbuild"
# shellcheck source=testdata/differential/peer.sh
. "$root/testdata/differential/peer.sh"
mkdir -p "$work"
logs="$work/logs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$logs"
TRASH="$work/trash"
# shellcheck source=testdata/bench/trash.sh
. "$root/testdata/bench/trash.sh"
peer_dir="$work/peer"
# Stops the peer's dockerd and unmounts what it left, deleting nothing (see trash.sh).
buildkit_stop() {
  local pid
  [ -f "$peer_dir/dockerd.pid" ] || return 0
  pid="$(cat "$peer_dir/dockerd.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  awk -v w="$peer_dir/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  rm -f "$peer_dir/dockerd.pid"
}
cleanup() {
  kill "${REGISTRY_PID:-}" 2>/dev/null || true
  buildkit_stop
  discard "$peer_dir"
  empty_trash
}
trap cleanup EXIT

# The base image in a registry every tool pulls from.
serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
base_tar="$root/.cache/debian-bookworm-minbase.tar"
bash "$root/testdata/images/make-debian.sh" "$base_tar"
mkdir -p "$work/base"
cp "$base_tar" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/base/Dockerfile"
"$rbuild" --root "$work/base-store" build -q -t base -o "type=oci,dest=$work/base.tar" "$work/base" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/base.tar" "docker://$REGISTRY/debian:bookworm"
discard "$work/base-store"
rm -f "$work/base.tar"
base="$REGISTRY/debian:bookworm"

# The contexts (made afresh each run; the changed file is restored after its phase).
make_contexts() {
  local c="$work/ctx"
  rm -rf "$c"
  mkdir -p "$c/db" "$c/python" "$c/c/src"
  cat >"$c/db/Dockerfile" <<DF
FROM $base
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends mariadb-server && rm -rf /var/lib/apt/lists/*
COPY server.cnf /etc/mysql/mariadb.conf.d/90-bench.cnf
COPY init.sql /docker-entrypoint-initdb.d/init.sql
RUN mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld \\
 && (mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock &) \\
 && for i in \$(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done \\
 && mariadb < /docker-entrypoint-initdb.d/init.sql \\
 && mariadb-admin shutdown
EXPOSE 3306
CMD ["mariadbd", "--user=mysql"]
DF
  printf '[mysqld]\ninnodb_buffer_pool_size=64M\n' >"$c/db/server.cnf"
  printf 'CREATE DATABASE app;\nCREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);\nINSERT INTO app.t VALUES (1, %s);\n' "'one'" >"$c/db/init.sql"
  # Certificate authorities this machine adds (a TLS-inspecting proxy in front of PyPI,
  # say) go into the image, and pip is told to use the system's list.
  mkdir -p "$c/python/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$c/python/local-ca/" 2>/dev/null || true
  cat >"$c/python/Dockerfile" <<DF
FROM $base
ENV DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv
COPY requirements.txt /app/
RUN /venv/bin/pip install --no-cache-dir -r /app/requirements.txt
COPY app.py /app/
RUN /venv/bin/python -m compileall -q /app
CMD ["/venv/bin/python", "/app/app.py"]
DF
  printf 'flask==3.0.3\nrequests==2.32.3\n' >"$c/python/requirements.txt"
  printf 'import flask\napp = flask.Flask(__name__)\nprint("version 1")\n' >"$c/python/app.py"
  cat >"$c/c/Dockerfile" <<DF
FROM $base AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev make && rm -rf /var/lib/apt/lists/*
COPY src/ /src/
RUN make -C /src
FROM $base
COPY --from=build /src/hello /usr/local/bin/hello
CMD ["hello"]
DF
  printf 'hello: main.c\n\tgcc -O2 -o $@ $<\n' >"$c/c/src/Makefile"
  printf '#include <stdio.h>\nint main(void) { puts("version 1"); return 0; }\n' >"$c/c/src/main.c"
}
changed_file() { case $1 in db) echo init.sql ;; python) echo app.py ;; c) echo src/main.c ;; esac; }
# A line that changes the file without breaking it: a comment in its language.
change_line() { case $1 in db) echo "-- change $2" ;; python) echo "# change $2" ;; c) echo "// change $2" ;; esac; }

# shellcheck source=testdata/bench/timing.sh
. "$root/testdata/bench/timing.sh"

# What rbuild's download cache served in a build, from --progress json.
downloads() {
  python3 - "$1" <<'PY'
import json, sys
served = fetched = sb = fb = 0
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "downloads":
        served += e["served"]; sb += e["served_bytes"]; fetched += e["fetched"]; fb += e["fetched_bytes"]
print(f"    download cache: {served} files ({sb / 1e6:.1f} MB) served, {fetched} ({fb / 1e6:.1f} MB) from the mirror")
PY
}

# rbuild's account of its steps, from --progress json: per step, the command's own time
# and what rbuild added on the critical path; the layers' background work apart.
breakdown() {
  python3 - "$1" <<'PY'
import json, sys
steps, end = {}, 0.0
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") != "timings":
        continue
    if e["step"] is None:
        end += sum(e["ms"].values())
        continue
    steps.setdefault(e["step"], {}).update(e["ms"])
total_cmd = total_added = 0.0
for n in sorted(steps):
    m = steps[n]
    if "command" not in m:
        # A COPY or metadata step right after a RUN waits for that RUN's layer digest.
        if m.get("previous layer", 0) >= 1:
            total_added += m["previous layer"]
            print(f"    step {n}: waited {m['previous layer']:.0f} ms for the layer below")
        continue
    cmd = m["command"]
    # Extracting the base image's layers (pulled, or taken from the cache) is shown, not
    # counted as rbuild's own addition: every tool unpacks its base.
    added = sum(v for k, v in m.items() if k not in ("command", "layer", "unpack"))
    total_cmd += cmd
    total_added += added
    parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(m.items()) if k not in ("command", "layer", "unpack"))
    if m.get("unpack", 0) >= 1:
        parts += f"; base layers unpacked first {m['unpack']:.0f} ms"
    print(f"    step {n}: command {cmd:8.0f} ms, added {added:6.0f} ms ({parts}); layer beside the next step {m.get('layer', 0):.0f} ms")
print(f"    stage and build ends: waiting for the last layers and their sync {end:.0f} ms")
if total_cmd:
    total_added += end
    print(f"    commands {total_cmd:.0f} ms, rbuild added {total_added:.0f} ms on the critical path ({100 * total_added / total_cmd:.1f}%)")
PY
}

: >"$work/results.txt"
: >"$work/runs.txt"
: >"$work/breakdown.txt"
# bench SCENARIO: every phase RUNS times, the tools taking turns run by run (run 1 of each
# tool, then run 2 of each ...), so that a drift of this machine's speed over minutes
# reaches them alike (each tool's phases one after the other put a tool's runs minutes
# from the other's). Each tool keeps its own storage; the context is shared, and each
# changed file is built by every tool. The tools' functions: TOOL_reset (empty storage),
# TOOL_build CTX (a build, tagged bench), TOOL_export / TOOL_import CTX (push a registry
# cache / build from it on empty storage).
bench() {
  local scen=$1 ctx="$work/ctx/$1" f tool r phase
  local here=()
  for tool in rbuild buildkit buildah; do want "$tool" && here+=("$tool"); done
  for tool in "${here[@]}"; do
    for phase in cold noop nocache change import; do printf -v "${phase}_$tool" '%s' ""; done
  done
  f="$ctx/$(changed_file "$scen")"
  cp -p "$f" "$work/changed.orig"
  for r in $(seq "$runs"); do
    for tool in "${here[@]}"; do
      "${tool}_reset"
      measure "cold_$tool" "$logs/$tool-$scen-cold-$r.log" "${tool}_build" "$ctx"
    done
  done
  for r in $(seq "$runs"); do
    for tool in "${here[@]}"; do
      measure "noop_$tool" "$logs/$tool-$scen-noop-$r.log" "${tool}_build" "$ctx"
    done
  done
  for r in $(seq "$runs"); do
    for tool in "${here[@]}"; do
      measure "nocache_$tool" "$logs/$tool-$scen-nocache-$r.log" "${tool}_build" "$ctx" --no-cache
    done
  done
  for r in $(seq "$runs"); do
    change_line "$scen" "$r $(now)" >>"$f"
    for tool in "${here[@]}"; do
      measure "change_$tool" "$logs/$tool-$scen-changed-$r.log" "${tool}_build" "$ctx"
    done
  done
  cp -p "$work/changed.orig" "$f"
  if want rbuild; then
    {
      echo "  $scen, cold:" && breakdown "$logs/rbuild-$scen-cold-$runs.log"
      echo "  $scen, --no-cache:" && breakdown "$logs/rbuild-$scen-nocache-$runs.log" &&
        downloads "$logs/rbuild-$scen-nocache-$runs.log"
      echo "  $scen, one file changed:" && breakdown "$logs/rbuild-$scen-changed-$runs.log"
    } >>"$work/breakdown.txt"
  fi
  for tool in "${here[@]}"; do
    "${tool}_export" "$ctx" "$scen" >"$logs/$tool-$scen-export.log" 2>&1 || { echo "failed: $tool cache export" >&2; tail -20 "$logs/$tool-$scen-export.log" >&2; exit 1; }
  done
  for r in $(seq "$runs"); do
    for tool in "${here[@]}"; do
      "${tool}_reset"
      measure "import_$tool" "$logs/$tool-$scen-import-$r.log" "${tool}_import" "$ctx" "$scen"
    done
  done
  for tool in "${here[@]}"; do
    local c="cold_$tool" n="noop_$tool" x="nocache_$tool" g="change_$tool" i="import_$tool"
    echo "$tool $scen $(echo "${!c}" | median) $(echo "${!n}" | median) $(echo "${!x}" | median) $(echo "${!g}" | median) $(echo "${!i}" | median)" | tee -a "$work/results.txt"
    # shellcheck disable=SC2086
    echo "$tool $scen single runs, ms: cold$(ms ${!c}) | no-op$(ms ${!n}) | no-cache$(ms ${!x}) | changed$(ms ${!g}) | cache import$(ms ${!i})" | tee -a "$work/runs.txt"
  done
}

rbuild_reset() { discard "$work/rbuild-store"; }
rbuild_build() { "$rbuild" --root "$work/rbuild-store" build --network host --progress json -t bench "$@"; }
rbuild_export() {
  "$rbuild" --root "$work/rbuild-store" build --network host -q -t bench \
    --cache-to "type=registry,ref=$REGISTRY/cache/rbuild-$2" "$1"
}
rbuild_import() {
  "$rbuild" --root "$work/rbuild-store" build --network host --progress json -t bench \
    --cache-from "type=registry,ref=$REGISTRY/cache/rbuild-$2" "$1"
}

buildkit_reset() {
  buildkit_stop
  discard "$peer_dir"
  mkdir -p "$peer_dir"
  start_dockerd "$peer_dir" "$PEER/root/usr/bin:$PEER/root/usr/sbin" >/dev/null || { echo "dockerd did not start" >&2; exit 1; }
  # The registry is plain HTTP on loopback, which docker allows without configuration.
}
buildkit_build() { DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain --network=host -t bench "$@"; }
buildkit_export() {
  DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain --network=host \
    --build-arg BUILDKIT_INLINE_CACHE=1 -t "$REGISTRY/cache/buildkit-$2" "$1" &&
    /usr/bin/docker push -q "$REGISTRY/cache/buildkit-$2"
}
buildkit_import() {
  DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain --network=host \
    --cache-from "$REGISTRY/cache/buildkit-$2" -t bench "$1"
}

buildah_reset() { discard "$work/buildah"; }
buildah_cmd() { buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver overlay "$@"; }
buildah_build() {
  buildah_cmd bud --layers --isolation oci --runtime runc --network host --tls-verify=false -t bench "$@"
}
buildah_export() {
  buildah_cmd bud --layers --isolation oci --runtime runc --network host --tls-verify=false \
    --cache-to "$REGISTRY/cache/buildah-$2" -t bench "$1"
}
buildah_import() {
  buildah_cmd bud --layers --isolation oci --runtime runc --network host --tls-verify=false \
    --cache-from "$REGISTRY/cache/buildah-$2" -t bench "$1"
}

make_contexts
want buildkit && ensure_docker26
# Storage is never deleted between measured runs (testdata/bench/trash.sh says why).
wait_for_quiet_inodes
first=1
for scen in $scenarios; do
  # Each scenario's storage takes up to ~15 GB over the three tools: it goes before the
  # next scenario, which then waits out the file system's memory of it (trash.sh).
  if [ "$first" = 0 ]; then buildkit_stop; discard "$peer_dir"; empty_trash; wait_for_quiet_inodes; fi
  first=0
  bench "$scen"
done

echo
cat "$work/runs.txt"
echo
echo "rbuild's steps (last cold and last changed build of each scenario):"
cat "$work/breakdown.txt"
echo
echo "medians of $runs runs, seconds; ratio = rbuild / peer (below 1: rbuild is faster)"
python3 "$root/testdata/bench/ratios.py" "$work/results.txt" cold no-op no-cache changed import
