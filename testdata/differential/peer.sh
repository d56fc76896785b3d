# Sourced by the differential scripts (run.sh, apt.sh): start_peer WORK makes everything
# both tools build with, in WORK (a fresh directory, removed by stop_peer):
# - the peer: docker 26.1 / BuildKit v0.13 from Debian 13's packages (docker.io,
#   containerd, docker-buildx), downloaded with a private package list and unpacked under
#   $DOCKER26 (default ~/.cache/rbuild-peers/docker26) on first use, nothing installed
#   system-wide but Debian 12's runc and docker.io (whose docker client talks to the
#   peer's dockerd); its dockerd runs with its own data root and socket (DOCKER_HOST);
# - the test packages when some are missing (testdata/test-packages.txt);
# - rbuild, built (RBUILD);
# - a local docker-registry (REGISTRY) serving busybox:latest, the base both tools pull.
# Root only.
# shellcheck source=/dev/null
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/registry.sh"
# shellcheck source=/dev/null
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/dockerd.sh"

# Downloads and unpacks docker 26.1 / BuildKit v0.13 from Debian 13's packages into
# $DOCKER26 (default ~/.cache/rbuild-peers/docker26) on first use; sets PEER to that folder.
ensure_docker26() {
  local mirror deb
  PEER="${DOCKER26:-$HOME/.cache/rbuild-peers/docker26}"
  [ ! -x "$PEER/root/usr/sbin/dockerd" ] || return 0
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rm -rf "$PEER"
  mkdir -p "$PEER/lists" "$PEER/cache" "$PEER/debs" "$PEER/root"
  echo "deb $mirror trixie main" >"$PEER/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$PEER/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$PEER/lists" -o "Dir::Cache=$PEER/cache")
  apt-get "${apt_opts[@]}" update >/dev/null 2>&1
  (cd "$PEER/debs" && apt-get "${apt_opts[@]}" download docker.io containerd docker-buildx >/dev/null 2>&1)
  for deb in "$PEER"/debs/*.deb; do dpkg-deb -x "$deb" "$PEER/root"; done
}

start_peer() {
  work="$1"
  local root tool missing
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  [ "$(id -u)" = 0 ] || { echo "the differential suite runs as root (dockerd, the sandbox)" >&2; return 1; }
  ensure_docker26
  missing=0
  for tool in docker-registry busybox skopeo umoci slirp4netns pkg-config zstd; do
    command -v "$tool" >/dev/null || missing=1
  done
  # shellcheck disable=SC2046
  [ "$missing" = 0 ] || bash "$root/testdata/apt-install.sh" $(grep -v '^#' "$root/testdata/test-packages.txt")
  command -v runc >/dev/null || bash "$root/testdata/apt-install.sh" runc
  [ -x /usr/bin/docker ] || bash "$root/testdata/apt-install.sh" docker.io
  start_dockerd "$work" "$PEER/root/usr/bin:$PEER/root/usr/sbin" || return 1
  export DOCKER_BUILDKIT=1
  (cd "$root" && cargo build --quiet -p rbuild)
  RBUILD="$root/target/debug/rbuild"
  serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; return 1; }
  bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci-archive:$work/images/busybox-oci.tar" \
    "docker://$REGISTRY/busybox:latest"
}

# Stops the registry and dockerd, unmounts what dockerd left and removes WORK.
stop_peer() {
  kill "${REGISTRY_PID:-}" 2>/dev/null || true
  stop_dockerd "$work"
}
