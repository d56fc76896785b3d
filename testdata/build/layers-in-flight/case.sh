# Several layers written at once while the steps after them run (a RUN's layer, the COPY
# and RUN after it, metadata steps between), and a layer taken from the cache put on top
# of layers still being written (the COPY whose content matches an earlier build's after
# the RUN before it ran again): every step's file system is complete, and the image ID
# printed after each step is the one a rebuild from the cache prints (the IDs reported
# late, once the digests below are known, are computed from the same layers), in order.
echo small > small.txt
ids() {
  awk '/^Step [0-9]+\/[0-9]+ : / { split($2, a, "/"); cur = a[1]; next }
       /^ ---> [0-9a-f]+$/ { print cur, $2 }' "$OUT"
}
build -t flight .
ids >"$WORK/first"
[ "$(wc -l <"$WORK/first")" = 11 ] || fail "not one ID per step: $(cat "$WORK/first")"
[ "$(cut -d' ' -f1 "$WORK/first" | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 " ] \
  || fail "the IDs are not in step order: $(cat "$WORK/first")"
build -t flight .
for n in 3 5 6 9 10; do step_cached "$n"; done
ids >"$WORK/second"
diff "$WORK/first" "$WORK/second" >&2 || fail "a cached rebuild printed other image IDs"
run_is flight "small" cat /copied
out="$(rb run --rm flight)"
case "$out" in *40000000*/big1*20000000*/big2*) ;; *) fail "the RUN after two layers in flight saw: $out" ;; esac
rb run --rm flight test ! -e /big1 || fail "/big1 was removed by the last RUN"
[ "$(rb inspect flight | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["RootFS"]["Layers"]))')" = 7 ] \
  || fail "not 7 layers (busybox, 4 RUNs, COPY, WORKDIR)"
# The first RUN again: the COPY after it reuses its layer on top of the RUN's in flight.
build --build-arg V=2 -t flight .
step_ran 3
ids >"$WORK/third"
build --build-arg V=2 -t flight .
step_cached 5
ids >"$WORK/fourth"
diff "$WORK/third" "$WORK/fourth" >&2 || fail "with a reused layer on top of one in flight, other IDs"
run_is flight "2" cat /v
