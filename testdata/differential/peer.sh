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

start_peer() {
  work="$1"
  local root peer mirror tool missing deb
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  peer="${DOCKER26:-$HOME/.cache/rbuild-peers/docker26}"
  [ "$(id -u)" = 0 ] || { echo "the differential suite runs as root (dockerd, the sandbox)" >&2; return 1; }
  if [ ! -x "$peer/root/usr/sbin/dockerd" ]; then
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rm -rf "$peer"
    mkdir -p "$peer/lists" "$peer/cache" "$peer/debs" "$peer/root"
    echo "deb $mirror trixie main" >"$peer/sources.list"
    local apt_opts=(-o "Dir::Etc::SourceList=$peer/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$peer/lists" -o "Dir::Cache=$peer/cache")
    apt-get "${apt_opts[@]}" update >/dev/null 2>&1
    (cd "$peer/debs" && apt-get "${apt_opts[@]}" download docker.io containerd docker-buildx >/dev/null 2>&1)
    for deb in "$peer"/debs/*.deb; do dpkg-deb -x "$deb" "$peer/root"; done
  fi
  missing=0
  for tool in docker-registry busybox skopeo umoci slirp4netns pkg-config zstd; do
    command -v "$tool" >/dev/null || missing=1
  done
  # shellcheck disable=SC2046
  [ "$missing" = 0 ] || bash "$root/testdata/apt-install.sh" $(grep -v '^#' "$root/testdata/test-packages.txt")
  command -v runc >/dev/null || bash "$root/testdata/apt-install.sh" runc
  [ -x /usr/bin/docker ] || bash "$root/testdata/apt-install.sh" docker.io
  start_dockerd "$work" "$peer/root/usr/bin:$peer/root/usr/sbin" || return 1
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
