#!/usr/bin/env bash
# The Debian comparison: a build on a Debian 12 base that installs packages with apt-get,
# built twice by rbuild and twice by BuildKit v0.13 (peer.sh), every build from scratch
# (--no-cache) and from the same base (by digest, from a local registry). The file trees
# of rbuild's and BuildKit's first builds must be the same apart from files that also
# differ between the two builds of one tool (apt's and dpkg's logs and caches,
# ldconfig's aux-cache ...): the script lists those, and fails when a path differs
# between the tools that differs between neither tool's two builds. The configs, the
# history and the layer counts must be equal. Needs root and the Debian mirror
# (testdata/images/make-debian.sh keeps the base in .cache/). KEEP=DIR keeps the images.
# Usage: testdata/differential/apt.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=testdata/differential/peer.sh
. "$here/peer.sh"
trap stop_peer EXIT
start_peer "$(mktemp -d)"
base_tar="$repo/.cache/debian-bookworm-minbase.tar"
bash "$repo/testdata/images/make-debian.sh" "$base_tar"

# The base image, made by rbuild from the debootstrap tree and pushed to the registry.
mkdir -p "$work/base" "$work/app" "$work/out"
cp "$base_tar" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/base/Dockerfile"
"$RBUILD" --root "$work/store" build -q -t debian-base -o "type=oci,dest=$work/base.tar" "$work/base" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/base.tar" "docker://$REGISTRY/debian:bookworm"
cat >"$work/app/Dockerfile" <<DOCKERFILE
FROM $REGISTRY/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates
RUN useradd --create-home --uid 1000 app
WORKDIR /home/app
DOCKERFILE

for n in 1 2; do
  echo "== rbuild, build $n"
  start=$(date +%s)
  "$RBUILD" --root "$work/store" build --no-cache --network host -q -t "apt:$n" \
    -o "type=oci,dest=$work/out/rbuild-$n.tar" "$work/app" >/dev/null
  echo "   $(( $(date +%s) - start )) s"
  echo "== BuildKit, build $n"
  start=$(date +%s)
  /usr/bin/docker build --no-cache --network host -q -t "apt:$n" "$work/app" >/dev/null
  /usr/bin/docker save -o "$work/out/buildkit-$n.tar" "apt:$n"
  echo "   $(( $(date +%s) - start )) s"
done
[ -z "${KEEP:-}" ] || { mkdir -p "$KEEP" && cp "$work"/out/*.tar "$KEEP/"; }
python3 "$here/compare.py" --against-noise "$work/out/rbuild-1.tar" "$work/out/buildkit-1.tar" \
  "$work/out/rbuild-2.tar" "$work/out/buildkit-2.tar"
