# Helpers for the end-to-end build cases: each case is a directory with a Dockerfile,
# its context and a `case.sh` that builds with these functions and asserts on the result.
# run-case.sh sources this file; every failed assertion exits non-zero with a message.
#
# Set by run-case.sh: RBUILD (the binary), STORE (a fresh store with busybox:latest),
# WORK (a copy of the case directory, the current directory), OUT (the last build's output).

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$OUT" ]; then
    echo "--- last build output:" >&2
    cat "$OUT" >&2
  fi
  exit 1
}

rb() { "$RBUILD" --root "$STORE" "$@"; }

# serve_registry and free_port (a free loopback port outside the ephemeral range).
# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/../registry.sh"

# build ARGS...: `rbuild build --progress plain ARGS` must succeed; then every image it
# named (-t) must have a sound config (see config_sound).
build() {
  if ! rb build --progress plain "$@" >"$OUT" 2>&1; then
    fail "rbuild build $* failed"
  fi
  local prev="" arg
  for arg in "$@"; do
    [ "$prev" = "-t" ] && config_sound "$arg"
    prev="$arg"
  done
}

# config_sound IMAGE: the image config agrees with itself and with the build output: one
# history entry per layer that is not marked empty, this machine's OS and architecture,
# the ID the build printed last, and every step of the final stage in the history.
config_sound() {
  rb inspect "$1" >"$WORK/.inspect.json" || fail "rbuild inspect $1 failed"
  python3 - "$WORK/.inspect.json" "$OUT" "$(uname -m)" <<'PY' || fail "the config of $1"
import json, re, sys
d = json.load(open(sys.argv[1]))[0]
out = open(sys.argv[2]).read()
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(sys.argv[3], sys.argv[3])
made = [h for h in d["History"] if not h.get("empty_layer")]
assert len(made) == len(d["RootFS"]["Layers"]), (len(made), len(d["RootFS"]["Layers"]))
assert d["Os"] == "linux" and d["Architecture"] == arch, (d["Os"], d["Architecture"])
built = re.findall(r"^Successfully built ([0-9a-f]{12})$", out, re.M)
assert built and d["Id"].startswith("sha256:" + built[-1]), (built, d["Id"])
assert all(h.get("created") for h in d["History"]), "a history entry without a time"
PY
}

# build_fails ARGS...: the build must fail (non-zero exit).
build_fails() {
  if rb build --progress plain "$@" >"$OUT" 2>&1; then
    fail "rbuild build $* succeeded but should have failed"
  fi
}

# expect_output TEXT: the last build's output has TEXT (fixed string).
expect_output() {
  grep -qF -- "$1" "$OUT" || fail "the output lacks: $1"
}

# expect_no_output TEXT: the last build's output does not have TEXT.
expect_no_output() {
  if grep -qF -- "$1" "$OUT"; then fail "the output has: $1"; fi
}

# step_cached N / step_ran N: step N of the last build came from the cache / ran.
step_state() {
  awk -v n="$1" '
    /^Step [0-9]+\/[0-9]+ : / { split($2, a, "/"); cur = a[1]; next }
    cur == n && /^ ---> Using cache$/ { s = "cached" }
    cur == n && /^ ---> Running in / { s = "ran" }
    END { print s == "" ? "none" : s }' "$OUT"
}
step_cached() {
  local s; s="$(step_state "$1")"
  [ "$s" = cached ] || fail "step $1 should come from the cache (it was: $s)"
}
step_ran() {
  local s; s="$(step_state "$1")"
  [ "$s" = ran ] || fail "step $1 should have run (it was: $s)"
}
# step_not_cached N: step N made its layer anew (ran, or a COPY without "Using cache").
step_not_cached() {
  local s; s="$(step_state "$1")"
  [ "$s" != cached ] || fail "step $1 should not come from the cache"
}

# run_is IMAGE EXPECTED CMD...: the command's output in the image is EXPECTED.
run_is() {
  local image="$1" expected="$2"; shift 2
  local got
  got="$(rb run --rm --network none "$image" "$@" 2>&1)" || fail "rbuild run $image $* failed: $got"
  [ "$got" = "$expected" ] || fail "rbuild run $image $*: expected [$expected], got [$got]"
}

# file_is IMAGE PATH CONTENT: the file's content.
file_is() { run_is "$1" "$3" cat "$2"; }

# absent IMAGE PATH: the path does not exist in the image.
absent() {
  if rb run --rm --network none "$1" test -e "$2" 2>/dev/null; then
    fail "$2 should not exist in $1"
  fi
}

# stat_is IMAGE PATH FORMAT EXPECTED: `stat -c FORMAT PATH` in the image.
stat_is() { run_is "$1" "$4" stat -c "$3" "$2"; }

# config_is IMAGE EXPR JSON: a Python expression over `d` (the image's inspect object)
# equals the JSON value given.
config_is() {
  rb inspect "$1" >"$WORK/.inspect.json" || fail "rbuild inspect $1 failed"
  python3 - "$WORK/.inspect.json" "$2" "$3" <<'PY' || fail "config check $2 of $1"
import json, sys
d = json.load(open(sys.argv[1]))[0]
got = eval(sys.argv[2], {"d": d})
want = json.loads(sys.argv[3])
if got != want:
    print(f"{sys.argv[2]}: expected {want!r}, got {got!r}", file=sys.stderr)
    sys.exit(1)
PY
}

# start_registry: starts Debian's docker-registry (distribution 2.8) on a free loopback
# port, stopped when the case ends; sets REGISTRY to HOST:PORT.
start_registry() {
  command -v docker-registry >/dev/null || fail "this case needs docker-registry (Debian package docker-registry)"
  serve_registry "$WORK/.registry" || fail "docker-registry did not start on $REGISTRY"
  trap 'kill $REGISTRY_PID 2>/dev/null' EXIT
}
