#!/usr/bin/env bash
# The differential suite: every case under testdata/differential/cases/ (a Dockerfile and
# its context; a case's make.sh makes what git cannot hold) built by rbuild and by
# BuildKit v0.13 (docker 26.1 from Debian 13's packages, unpacked under $DOCKER26, with
# its own data root and socket), both from the same busybox base served by a local
# docker-registry. Each pair of images is compared by compare.py (tree, config, history,
# layers); prints a line per case and the count, exits 1 when a case differs or fails.
# Root only. KEEP=DIR keeps both images of each case in DIR/CASE/.
# Usage: testdata/differential/run.sh [CASE...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
peer="${DOCKER26:-$HOME/.cache/rbuild-peers/docker26}"
work="$(mktemp -d)"
# shellcheck source=/dev/null
. "$root/testdata/registry.sh"
cleanup() {
  [ -f "$work/dockerd.pid" ] && kill "$(cat "$work/dockerd.pid")" 2>/dev/null || true
  kill "${REGISTRY_PID:-}" 2>/dev/null || true
  sleep 1
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The peer: Debian 13's docker.io, containerd and docker-buildx, downloaded with a private
# package list and unpacked (nothing is installed on the system but Debian 12's runc).
if [ ! -x "$peer/root/usr/sbin/dockerd" ]; then
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  mkdir -p "$peer/lists" "$peer/cache" "$peer/debs" "$peer/root"
  echo "deb $mirror trixie main" >"$peer/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$peer/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$peer/lists" -o "Dir::Cache=$peer/cache")
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$peer/debs" && apt-get "${apt_opts[@]}" download docker.io containerd docker-buildx >/dev/null)
  for deb in "$peer"/debs/*.deb; do dpkg-deb -x "$deb" "$peer/root"; done
fi
command -v runc >/dev/null || bash "$root/testdata/apt-install.sh" runc
[ -x /usr/bin/docker ] || bash "$root/testdata/apt-install.sh" docker.io
export PATH="$peer/root/usr/bin:$peer/root/usr/sbin:$PATH"
setsid dockerd --host "unix://$work/docker.sock" --data-root "$work/docker" \
  --exec-root "$work/exec" --pidfile "$work/dockerd.pid" --iptables=false \
  --ip6tables=false --bridge=none --storage-driver overlay2 >"$work/dockerd.log" 2>&1 </dev/null &
export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=1
for _ in $(seq 120); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.5; done
/usr/bin/docker version >/dev/null 2>&1 || { tail -20 "$work/dockerd.log" >&2; exit 1; }

(cd "$root" && cargo build --quiet -p rbuild)
rbuild="$root/target/debug/rbuild"
serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/images/busybox-oci.tar" "docker://$REGISTRY/busybox:latest"

cases=("$@")
[ ${#cases[@]} -gt 0 ] || mapfile -t cases < <(ls "$here/cases")
same=0; differ=0
for case in "${cases[@]}"; do
  ctx="$work/ctx-$case"
  cp -a "$here/cases/$case" "$ctx"
  [ -f "$ctx/make.sh" ] && (cd "$ctx" && bash make.sh && rm make.sh)
  sed -i "s|^FROM busybox|FROM $REGISTRY/busybox:latest|I; s|--from=busybox|--from=$REGISTRY/busybox:latest|g" "$ctx/Dockerfile"
  out="$work/out-$case"; mkdir -p "$out"
  if ! "$rbuild" --root "$work/store" build --network host -q -t "diff/$case" \
      -o "type=oci,dest=$out/rbuild.tar" "$ctx" >"$out/rbuild.log" 2>&1; then
    echo "FAILED in rbuild: $case"; sed 's/^/  /' "$out/rbuild.log" | tail -5; differ=$((differ + 1)); continue
  fi
  if ! /usr/bin/docker build --network host -q -t "diff/$case" "$ctx" >"$out/buildkit.log" 2>&1 ||
     ! /usr/bin/docker save -o "$out/buildkit.tar" "diff/$case" >>"$out/buildkit.log" 2>&1; then
    echo "FAILED in BuildKit: $case"; sed 's/^/  /' "$out/buildkit.log" | tail -5; differ=$((differ + 1)); continue
  fi
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP/$case" && cp "$out"/*.tar "$KEEP/$case/"
  fi
  if python3 "$here/compare.py" "$out/rbuild.tar" "$out/buildkit.tar" >"$out/diff.txt"; then
    echo "same:    $case"; same=$((same + 1))
  else
    echo "differs: $case"; sed 's/^/  /' "$out/diff.txt"; differ=$((differ + 1))
  fi
done
echo "differential: $same identical, $differ different or failed, of $((same + differ)) cases"
[ "$differ" = 0 ]
