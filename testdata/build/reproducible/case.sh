# SOURCE_DATE_EPOCH (from the environment, or as a build-arg) makes builds reproducible:
# two clean builds in two fresh stores, with the context's times changed in between, give
# the same manifest digest, for five Dockerfiles (multi-stage, ADD of an archive and of a
# file, heredocs, scratch). Without it, times differ and so do the digests; the epoch is
# part of the cache keys (the layers' times depend on it).
mkdir -p data && echo one > data/one.txt && echo two > data/two.txt
mkdir -p tree/sub && echo leaf > tree/sub/leaf.txt
tar -C tree -czf tree.tar.gz .
store2="$WORK/store2"
"$RBUILD" --root "$store2" load -q -i "$BUSYBOX_OCI" > /dev/null
digest() { "$RBUILD" --root "$1" inspect "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Descriptor"]["digest"])'; }
for df in single multi add heredoc scratch; do
  SOURCE_DATE_EPOCH=1700000000 build -t "r-$df" -f "Dockerfile.$df" .
  sleep 1.1
  touch data/* tree.tar.gz
  if ! SOURCE_DATE_EPOCH=1700000000 "$RBUILD" --root "$store2" build -q -t "r-$df" -f "Dockerfile.$df" . > "$OUT" 2>&1; then
    fail "the second build of Dockerfile.$df"
  fi
  a="$(digest "$STORE" "r-$df")"; b="$(digest "$store2" "r-$df")"
  [ "$a" = "$b" ] || fail "Dockerfile.$df: $a in one store, $b in the other"
done
config_is r-multi 'd["Created"]' '"2023-11-14T22:13:20Z"'
build -t by-arg --build-arg SOURCE_DATE_EPOCH=1700000000 -f Dockerfile.single .
[ "$(digest "$STORE" by-arg)" = "$(digest "$STORE" r-single)" ] || fail "SOURCE_DATE_EPOCH as a build-arg"
build -t unclamped -f Dockerfile.single .
step_ran 4
[ "$(digest "$STORE" unclamped)" != "$(digest "$STORE" r-single)" ] || fail "without SOURCE_DATE_EPOCH the digest should differ"
