# A COPY whose chain key misses (a step before it changed) but whose files, destination
# and parents are the same as before reuses the layer it made then: the same diff ID,
# nothing written again; the steps that really depend on the change still run.
echo one > a.txt
head -c 100000 /dev/zero | tr '\0' 'z' > big.txt
build -t lr .
before="$(rb inspect lr | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][3])')"
echo two > a.txt
build -t lr .
step_not_cached 3; step_not_cached 4; step_ran 5
after="$(rb inspect lr | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][3])')"
[ "$before" = "$after" ] || fail "COPY big.txt made a new layer ($after, was $before)"
run_is lr "two" head -1 /app/both.txt
echo three > a.txt
touch big.txt
build -t lr .
after2="$(rb inspect lr | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][3])')"
[ "$before" = "$after2" ] || fail "a touched big.txt made a new layer"
