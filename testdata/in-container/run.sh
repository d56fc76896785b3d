#!/usr/bin/env bash
# rbuild inside containers, as a CI job runs it: Debian 12's docker.io (20.10) started
# with its own data root and socket, rbuild's own image (cli/image/build.sh, a debug
# build) loaded into it, a local docker-registry on the host's loopback (the containers
# share the host's network to reach it). Checks:
# - root in a default `docker run` (Docker's capabilities and seccomp profile): a
#   COPY-only build works with the store on the container's own root; with --isolation
#   sandbox, a RUN fails with rbuild's explanation of what the container refuses, not as
#   the command's failure; so does a RUN in a container that does not mark itself as
#   throwaway (no RBUILD_KEEP);
# - root in a default `docker run` again: the multi-stage build of multistage/ (RUN with a
#   cache mount, COPY, ADD, USER, WORKDIR, COPY --from) works in the container isolation
#   rbuild chooses there, with the store on the container's own root (overlayfs), and the
#   image it pushes has the tree, config and history of the one rbuild builds on the host
#   with the full sandbox;
# - the image's non-root user `build` with seccomp and AppArmor unconfined and Docker's
#   default masked /proc paths: the same multi-stage build works, isolated by a user
#   namespace of the user's subordinate ids (newuidmap in the image), with the store in
#   its home on the container's own root (the layers stacked by copying: overlayfs refuses
#   an overlayfs upper directory), and the image it pushes equals the host's;
# - an arbitrary non-root uid without subordinate ids: the build without its USER step
#   (a user namespace then maps that uid alone) works the same way;
# - root with seccomp and AppArmor unconfined (still no added capability): the same
#   build in the full sandbox, in a user namespace of the same ids, equal to the host's;
# - a job's script in the image's shell: rbuild builds, then runs again in the container
#   the build rewrote;
# - outside a container (a root of its own that shows none), --isolation container
#   refuses to start.
# Prints a line per check; exits 1 when one fails. Root only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "in-container: needs root (dockerd)" >&2; exit 1; }
[ -x /usr/sbin/dockerd ] || bash "$root/testdata/apt-install.sh" docker.io
work="$(mktemp -d)"
# Readable by the containers' non-root user (the contexts are in it).
chmod 0755 "$work"
# shellcheck source=testdata/registry.sh
. "$root/testdata/registry.sh"
# shellcheck source=testdata/dockerd.sh
. "$root/testdata/dockerd.sh"
cleanup() {
  kill "${REGISTRY_PID:-}" 2>/dev/null || true
  stop_dockerd "$work"
}
trap cleanup EXIT
start_dockerd "$work" || exit 1
serve_registry "$work/registry" || { echo "docker-registry did not start" >&2; exit 1; }
bash "$root/testdata/images/make-busybox.sh" "$work/images" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$work/images/busybox-oci.tar" "docker://$REGISTRY/busybox:latest"
RBUILD_ROOT="$work/host-store" PROFILE=debug bash "$root/cli/image/build.sh" rbuild:test -q \
  -o "type=docker,dest=$work/rbuild-image.tar" >/dev/null
docker load -q -i "$work/rbuild-image.tar" >/dev/null
rbuild="$root/target/debug/rbuild"

failed=0
check() { # check NAME CONDITION-EXIT-STATUS [DETAIL]
  if [ "$2" = 0 ]; then echo "ok:   $1"; else echo "FAIL: $1"; [ -z "${3:-}" ] || sed 's/^/      /' <<<"$3"; failed=1; fi
}
ctx() { # ctx NAME: a copy of a context with its FROM lines naming the local registry
  cp -a "$1" "$work/ctx-$2"
  sed -i "s#^FROM busybox#FROM $REGISTRY/busybox:latest#" "$work/ctx-$2/Dockerfile"
  echo "$work/ctx-$2"
}
in_container() { # in_container DOCKER-RUN-FLAGS... -- RBUILD-ARGS...
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  # The work folder is /work in the container (away from /tmp, which may be a tmpfs).
  docker run --rm --network host -v "$work:/work:ro" "${flags[@]}" rbuild:test "$@"
}

# Root, Docker's defaults.
mkdir -p "$work/copy-only" && echo f >"$work/copy-only/f"
printf 'FROM busybox\nCOPY f /f\n' >"$work/copy-only/Dockerfile"
c="$(ctx "$work/copy-only" copy)"
set +e
out="$(in_container -- build --network host "/work/ctx-copy" 2>&1)"
check "root, default container: a COPY-only build" $? "$out"
printf 'FROM busybox\nRUN true\n' >"$work/copy-only/Dockerfile"
c="$(ctx "$work/copy-only" run)"
out="$(in_container -- build --isolation sandbox --network host "/work/ctx-run" 2>&1)"; status=$?
[ "$status" != 0 ] && grep -q "rbuild runs each RUN in new Linux namespaces" <<<"$out" &&
  ! grep -q "returned a non-zero code" <<<"$out"
check "root, default container, --isolation sandbox: a RUN says what the container refuses (exit $status)" $? "$out"

# A container that does not mark itself as throwaway (no RBUILD_KEEP): rbuild does not
# rewrite it by itself; the RUN fails and names --isolation container.
out="$(docker run --rm --network host --entrypoint "" -v "$work:/work:ro" rbuild:test \
  sh -c 'env -u RBUILD_KEEP rbuild build --network host /work/ctx-run; echo "exit $?"; test -d /rbuild/busybox' 2>&1)"
status=$?
[ "$status" = 0 ] && grep -q -- "--isolation container" <<<"$out" && ! grep -q "^exit 0" <<<"$out"
check "root, default container without RBUILD_KEEP: no container isolation unasked" $? "$out"

# The multi-stage build as root in a default container: the container isolation.
c="$(ctx "$here/multistage" multi)"
( cd "$c" && mkdir -p t/files && echo packed >t/files/p && tar -C t -cf files.tar files && rm -rf t )
"$rbuild" --root "$work/host-store" build -q --network host -t host-built \
  -o "type=oci,dest=$work/host.tar" "$c" >/dev/null 2>&1
check "the multi-stage build on the host, full sandbox" $?
out="$(in_container -- build --network host --push -t "$REGISTRY/in-container:root" /work/ctx-multi 2>&1)"
status=$?
grep -q "isolation: the container" <<<"$out"
check "root, default container: the multi-stage build, pushed (container isolation said)" \
  $((status + $?)) "$out"
skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/in-container:root" "oci-archive:$work/pushed-root.tar" 2>&1
out="$(python3 "$root/testdata/differential/compare.py" "$work/pushed-root.tar" "$work/host.tar" 2>&1)"
check "its image equals the host's, file by file" $? "$out"

# Root with seccomp and AppArmor unconfined but no CAP_SYS_ADMIN: namespaces only in a
# user namespace, which rbuild enters (the full sandbox, not the container isolation).
out="$(in_container --security-opt seccomp=unconfined --security-opt apparmor=unconfined -- \
  build --network host --push -t "$REGISTRY/in-container:root-userns" /work/ctx-multi 2>&1)"
status=$?
grep -q "a sandbox in a user namespace of the same ids" <<<"$out" && ! grep -q "isolation: the container" <<<"$out"
check "root, seccomp and AppArmor unconfined: the multi-stage build in a user namespace, pushed" \
  $((status + $?)) "$out"
skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/in-container:root-userns" "oci-archive:$work/pushed-root-userns.tar" 2>&1
out="$(python3 "$root/testdata/differential/compare.py" "$work/pushed-root-userns.tar" "$work/host.tar" 2>&1)"
check "its image equals the host's, file by file" $? "$out"

# A CI job's script: the image's shell, and rbuild again after the container isolation
# has rewritten the container's files (rbuild is static, under /rbuild).
out="$(docker run --rm --network host --entrypoint "" -v "$work:/work:ro" rbuild:test \
  sh -c 'rbuild build -q -t job /work/ctx-multi >/dev/null && rbuild images && test -x /usr/local/bin/app' 2>&1)"
status=$?
grep -q "^job " <<<"$out"
check "a job script: build, then rbuild again in the rewritten container" $((status + $?)) "$out"

# The image's non-root user, seccomp and AppArmor unconfined: a user namespace of its
# subordinate ids, its store in its home (HOME from the image's /etc/passwd).
out="$(in_container --user build --security-opt seccomp=unconfined \
  --security-opt apparmor=unconfined -- \
  build --network host --push -t "$REGISTRY/in-container:build" /work/ctx-multi 2>&1)"
status=$?
grep -q "user namespace of your subordinate ids" <<<"$out" && grep -q "/home/build/.local/share/rbuild) is on overlayfs" <<<"$out"
check "non-root with subordinate ids, unconfined: the multi-stage build, pushed (its isolation said)" $((status + $?)) "$out"
skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/in-container:build" "oci-archive:$work/pushed-build.tar" 2>&1
out="$(python3 "$root/testdata/differential/compare.py" "$work/pushed-build.tar" "$work/host.tar" 2>&1)"
check "its image equals the host's, file by file" $? "$out"

# Another non-root uid, not in the image's /etc/passwd: no subordinate ids, a user
# namespace that maps that uid alone (a RUN as another user is refused there).
cp -a "$c" "$work/ctx-nouser"
sed -i '/^USER /d' "$work/ctx-nouser/Dockerfile"
"$rbuild" --root "$work/host-store" build -q --network host -t host-nouser \
  -o "type=oci,dest=$work/host-nouser.tar" "$work/ctx-nouser" >/dev/null 2>&1
check "the build without USER on the host, full sandbox" $?
out="$(in_container --user 2000:2000 --security-opt seccomp=unconfined \
  --security-opt apparmor=unconfined -e HOME=/tmp -- \
  --root /tmp/store build --network host --push -t "$REGISTRY/in-container:user" /work/ctx-nouser 2>&1)"
status=$?
grep -q "is on overlayfs" <<<"$out" && grep -q "maps only you" <<<"$out"
check "non-root without subordinate ids, unconfined: the build without USER, pushed (both said)" $((status + $?)) "$out"
skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/in-container:user" "oci-archive:$work/pushed-user.tar" 2>&1
out="$(python3 "$root/testdata/differential/compare.py" "$work/pushed-user.tar" "$work/host-nouser.tar" 2>&1)"
check "its image equals the host's, file by file" $? "$out"
# Outside a container, the container isolation refuses to start. This machine may itself
# be a container (CI machines often are): rbuild runs in a root of its own (chroot, new
# mount and PID namespaces, a fresh /proc) that shows no sign of one; were it to start
# anyway, it could only remove that root's files.
jail="$work/jail"
mkdir -p "$jail/rbuild" "$jail/proc" "$jail/ctx" "$jail/tmp"
cp "$root/target/x86_64-unknown-linux-gnu/debug/rbuild" "$jail/rbuild/rbuild"
printf 'FROM scratch\nRUN true\n' >"$jail/ctx/Dockerfile"
echo canary >"$jail/canary"
out="$(env -i PATH=/rbuild "$(command -v unshare)" --mount --pid --fork --root="$jail" --mount-proc=/proc \
  /rbuild/rbuild --root /tmp/store build --isolation container /ctx 2>&1)"
status=$?
[ "$status" != 0 ] && grep -q "refuses to run outside a container" <<<"$out" && [ -f "$jail/canary" ]
check "outside a container, --isolation container refuses to start (exit $status)" $? "$out"
set -e
[ "$failed" = 0 ] && echo "in-container: all checks passed" || { echo "in-container: some checks failed"; exit 1; }
