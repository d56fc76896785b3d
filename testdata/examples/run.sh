#!/usr/bin/env bash
# rbuild's main job on the bundled multi-stage example, on a fresh machine: installs what
# it needs (Debian packages, as root), builds rbuild, makes a busybox base image with
# testdata/images/make-busybox.sh and serves it from docker-registry on a free loopback
# port, then builds testdata/examples/multistage with `rbuild -t example .` (the base
# pulled from that registry), runs the image, builds again (every step from the cache)
# and shows `rbuild history`. The store is .cache/example/store; explore it with
# `rbuild --root .cache/example/store images`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$root"
need=()
command -v busybox >/dev/null || need+=(busybox-static)
command -v umoci >/dev/null || need+=(umoci)
command -v skopeo >/dev/null || need+=(skopeo)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v python3 >/dev/null || need+=(python3)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root to install ${need[*]}, or install them first" >&2; exit 1; }
  bash testdata/apt-install.sh "${need[@]}"
fi
[ "$(id -u)" = 0 ] || { echo "rbuild build runs RUN steps in its sandbox, which needs root today" >&2; exit 1; }
cargo build --quiet --release -p rbuild
rbuild="$root/target/release/rbuild"
work="$root/.cache/example"
store="$work/store"
rm -rf "$work"
mkdir -p "$work"
bash testdata/images/make-busybox.sh "$work/images" >/dev/null

# shellcheck source=/dev/null
. testdata/registry.sh
serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
registry="$REGISTRY"
trap 'kill $REGISTRY_PID 2>/dev/null || true' EXIT
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/images/busybox-oci.tar" "docker://$registry/library/busybox:latest"

cd testdata/examples/multistage
echo "== rbuild -t example --build-arg BASE=$registry/library/busybox ."
"$rbuild" --root "$store" -t example --build-arg BASE="$registry/library/busybox" .
echo
echo "== rbuild run --rm example"
"$rbuild" --root "$store" run --rm example
echo
echo "== the same build again: every step from the cache"
"$rbuild" --root "$store" -t example --build-arg BASE="$registry/library/busybox" .
echo
echo "== rbuild history example"
"$rbuild" --root "$store" history example
