#!/usr/bin/env bash
# Runs the build cases that go through the library with the recording executor
# (builder/tests/cases/) as an unprivileged user, and checks that they pass in under 30 s
# in all: they must need neither root nor a sandbox. Run as root (it makes the user
# rbuild-cases when missing and runs the test binary as that user). Part of
# testdata/run-tests.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ "$(id -u)" = 0 ] || { echo "lib-cases-rootless.sh: run as root (it switches to an unprivileged user)" >&2; exit 1; }
user=rbuild-cases
id "$user" >/dev/null 2>&1 || useradd --no-create-home --shell /bin/false "$user"
bin="$(cargo test -p rbuild-builder --test tests --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "tests":
        print(m["executable"])')"
[ -x "$bin" ] || { echo "lib-cases-rootless.sh: the builder's test binary was not built" >&2; exit 1; }
# The user gets a copy of the binary and of the cases in a folder of its own (the checkout
# may be where it cannot read, under /root say), and writes nowhere else.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/repo/testdata"
cp -a "$root/testdata/build" "$tmp/repo/testdata/"
cp "$bin" "$tmp/cases"
chmod 0755 "$tmp"
chown -R "$user" "$tmp"
start=$(date +%s%N)
runuser -u "$user" -- env HOME="$tmp" TMPDIR="$tmp" RBUILD_TESTDATA_ROOT="$tmp/repo" \
  "$tmp/cases" cases:: --test-threads 2
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "library build cases as user $user: ${elapsed_ms} ms"
[ "$elapsed_ms" -lt 30000 ] || { echo "FAIL: the library build cases took ${elapsed_ms} ms (limit 30000)" >&2; exit 1; }
