# Several layers written at once while the steps after them run (a RUN's layer, the COPY
# and RUN after it, metadata steps between): every step's file system is complete, and
# the image ID printed after each step is the one a rebuild from the cache prints (the
# IDs reported late, once the digests below are known, are computed from the same
# layers), in step order.
echo small > small.txt
ids() {
  awk '/^Step [0-9]+\/[0-9]+ : / { split($2, a, "/"); cur = a[1]; next }
       /^ ---> [0-9a-f]+$/ { print cur, $2 }' "$OUT"
}
build -t flight .
ids >"$WORK/first"
[ "$(wc -l <"$WORK/first")" = 10 ] || fail "not one ID per step: $(cat "$WORK/first")"
[ "$(cut -d' ' -f1 "$WORK/first" | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 " ] \
  || fail "the IDs are not in step order: $(cat "$WORK/first")"
build -t flight .
for n in 2 4 5 8 9; do step_cached "$n"; done
ids >"$WORK/second"
diff "$WORK/first" "$WORK/second" >&2 || fail "a cached rebuild printed other image IDs"
run_is flight "small" cat /copied
out="$(rb run --rm flight)"
case "$out" in *40000000*/big1*20000000*/big2*) ;; *) fail "the RUN after two layers in flight saw: $out" ;; esac
rb run --rm flight test ! -e /big1 || fail "/big1 was removed by the last RUN"
[ "$(rb inspect flight | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["RootFS"]["Layers"]))')" = 7 ] \
  || fail "not 7 layers (busybox, 4 RUNs, COPY, WORKDIR)"
