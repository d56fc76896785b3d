#!/usr/bin/env bash
# The differential suite: every case under testdata/differential/cases/ (a Dockerfile and
# its context; a case's make.sh makes what git cannot hold; its args file holds more
# build flags, one word a line; a case may be a link to a build case of testdata/build/)
# built by rbuild and by BuildKit v0.13 (docker 26.1, see
# peer.sh), both from the same busybox base served by a local docker-registry. Each pair
# of images is compared by compare.py: the file tree (type, mode, owner, size, content,
# link targets, hard-link groups), the config, the history, the layer count and each
# layer's whiteouts. A case with an expect-failure file passes when both tools refuse
# it; one with a deliberate-difference file is counted apart when it differs (the
# README lists those). Prints a line per case, a table and the count; exits 1 when a
# case differs or fails. Root only. KEEP=DIR keeps both images of each case in DIR/CASE/.
# Usage: testdata/differential/run.sh [CASE...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=testdata/differential/peer.sh
. "$here/peer.sh"
cleanup() {
  kill "${HTTP_PID:-}" 2>/dev/null || true
  stop_peer
}
trap cleanup EXIT
start_peer "$(mktemp -d)"
rbuild="$RBUILD"
# A loopback HTTP server for ADD of URLs: it serves the current case's served/ folder.
mkdir -p "$work/served"
http_port="$(free_port)"
(cd "$work/served" && exec python3 -m http.server --bind 127.0.0.1 "$http_port" >"$work/http.log" 2>&1) &
HTTP_PID=$!

cases=("$@")
[ ${#cases[@]} -gt 0 ] || mapfile -t cases < <(ls "$here/cases")
same=0; differ=0; deliberate=0; table=()
for case in "${cases[@]}"; do
  ctx="$work/ctx-$case"
  cp -aL "$here/cases/$case" "$ctx"
  [ -f "$ctx/make.sh" ] && (cd "$ctx" && bash make.sh && rm make.sh)
  # Both tools build FROM the same base, by the registry's name for it.
  sed -i -E "s#^(FROM( +--platform=[^ ]+)? +)busybox( |\$)#\1$REGISTRY/busybox:latest\3#I;
    s#from=busybox([ ,]|\$)#from=$REGISTRY/busybox:latest\1#g;
    s#@REGISTRY@#$REGISTRY#g; s#@HTTP@#http://127.0.0.1:$http_port#g" "$ctx/Dockerfile"
  find "$work/served" -mindepth 1 -delete
  [ -d "$ctx/served" ] && cp -a "$ctx/served/." "$work/served/"
  # A case's args file: more build flags, one word a line, given to both tools.
  extra=()
  [ -f "$ctx/args" ] && mapfile -t extra <"$ctx/args"
  out="$work/out-$case"; mkdir -p "$out"
  result=""
  rb_ok=1; bk_ok=1
  (cd "$ctx" && "$rbuild" --root "$work/store" build --network host -q -t "diff/$case" \
    ${extra[@]+"${extra[@]}"} -o "type=oci,dest=$out/rbuild.tar" . >"$out/rbuild.log" 2>&1) || rb_ok=0
  (cd "$ctx" && /usr/bin/docker build --network host -q -t "diff/$case" \
    ${extra[@]+"${extra[@]}"} . >"$out/buildkit.log" 2>&1) || bk_ok=0
  if [ -f "$ctx/expect-failure" ]; then
    # A case both tools must refuse.
    if [ "$rb_ok$bk_ok" = 00 ]; then
      result="identical"; detail="(both refuse it)"
    else
      result="differs"; detail="rbuild built: $rb_ok, BuildKit built: $bk_ok (both should refuse)"
    fi
  elif [ "$rb_ok" = 0 ]; then
    result="FAILED in rbuild"; detail="$(tail -3 "$out/rbuild.log")"
  elif [ "$bk_ok" = 0 ] ||
     ! /usr/bin/docker save -o "$out/buildkit.tar" "diff/$case" >>"$out/buildkit.log" 2>&1; then
    result="FAILED in BuildKit"; detail="$(tail -3 "$out/buildkit.log")"
  elif python3 "$here/compare.py" "$out/rbuild.tar" "$out/buildkit.tar" >"$out/diff.txt"; then
    result="identical"; detail=""
  else
    result="differs"; detail="$(cat "$out/diff.txt")"
  fi
  if [ "$result" != identical ] && [ -f "$ctx/deliberate-difference" ]; then
    # A difference the README lists as deliberate, with the reason in the case.
    result="deliberate"; detail="$(cat "$ctx/deliberate-difference")"
  fi
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP/$case" && cp "$out"/*.tar "$out"/*.log "$KEEP/$case/" 2>/dev/null || true
  fi
  printf '%-28s %s\n' "$case" "$result"
  [ -n "$detail" ] && sed 's/^/    /' <<<"$detail"
  table+=("$(printf '%-28s %s' "$case" "$result")")
  case "$result" in
    identical) same=$((same + 1)) ;;
    deliberate) deliberate=$((deliberate + 1)) ;;
    *) differ=$((differ + 1)) ;;
  esac
done
echo
printf '%-28s %s\n' CASE RESULT
printf '%s\n' "${table[@]}"
echo "differential: $same identical, $differ different or failed, $deliberate deliberate differences, of $((same + differ + deliberate)) cases"
[ "$differ" = 0 ]
