# A build cache that travels: build with --cache-to on store A; on an empty store B,
# --cache-from the same place gets every step from the cache (both stages) and the same
# image digest; one changed file re-runs only the steps that depend on it. Through a
# registry (docker-registry on the loopback) and through a local directory.
start_registry
rb push busybox "$REGISTRY/library/busybox:latest" > /dev/null || fail "push busybox"
base="$REGISTRY/library/busybox"
digest() { "$RBUILD" --root "$1" inspect "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Descriptor"]["digest"])'; }
build -t shared --build-arg BASE="$base" --cache-to "type=registry,ref=$REGISTRY/cache/app:buildcache,mode=max" .
a="$(digest "$STORE" shared)"
storeB="$WORK/storeB"
run_b() { "$RBUILD" --root "$storeB" build --progress plain "$@" > "$OUT" 2>&1 || fail "build on store B: $*"; }
run_b -t shared --build-arg BASE="$base" --cache-from "type=registry,ref=$REGISTRY/cache/app:buildcache" .
for n in 2 3 4 5 7 8; do step_cached "$n"; done
[ "$(digest "$storeB" shared)" = "$a" ] || fail "store B built $(digest "$storeB" shared), store A $a"
echo "two changed" > src/two.txt
run_b -t shared --build-arg BASE="$base" --cache-from "type=registry,ref=$REGISTRY/cache/app:buildcache" .
step_cached 2; step_cached 3; step_not_cached 4; step_ran 5; step_not_cached 7; step_ran 8
echo two > src/two.txt
build -t shared --build-arg BASE="$base" --cache-to "type=local,dest=$WORK/local-cache" .
storeC="$WORK/storeC"
"$RBUILD" --root "$storeC" build --progress plain -t shared --build-arg BASE="$base" --cache-from "type=local,src=$WORK/local-cache" . > "$OUT" 2>&1 || fail "build on store C"
for n in 2 3 4 5 7 8; do step_cached "$n"; done
[ "$(digest "$storeC" shared)" = "$a" ] || fail "store C built another image"
build -t shared --build-arg BASE="$base" --cache-from "type=local,src=$WORK/nowhere" .
expect_output "no build cache imported"
