#!/usr/bin/env bash
# Runs one end-to-end build case: run-case.sh CASE. Copies testdata/build/CASE to a new
# directory, makes a store holding busybox:latest (from the OCI archive $BUSYBOX_OCI, made
# by testdata/images/make-busybox.sh), then runs the case's case.sh there with lib.sh's
# helpers. Needs root (RUN steps run in the sandbox). RBUILD names the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case="${1:?usage: run-case.sh CASE}"
: "${RBUILD:?set RBUILD to the rbuild binary}"
: "${BUSYBOX_OCI:?set BUSYBOX_OCI to the busybox OCI archive}"
[ -f "$here/$case/case.sh" ] || { echo "no case $case" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export STORE="$tmp/store" WORK="$tmp/work" OUT="$tmp/out"
cp -a "$here/$case" "$WORK"
"$RBUILD" --root "$STORE" load -q -i "$BUSYBOX_OCI" >/dev/null
: >"$OUT"
cd "$WORK"
# shellcheck source=/dev/null
. "$here/lib.sh"
# shellcheck source=/dev/null
. ./case.sh
echo "ok: $case"
