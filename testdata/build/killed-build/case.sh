# Killing a build (SIGKILL) in the middle of a RUN ends the RUN's sandbox too: no process
# of it stays, nothing stays mounted, and the next build on the store works (and clears
# the dead sandbox's directory). The RUN's secret file is gone as soon as any rbuild
# opens the store again.
marker="rbuild-killed-build-$$-$RANDOM"
printf 'the-secret-%s' "$marker" > token.txt
"$RBUILD" --root "$STORE" build --progress plain -t killed --secret id=token,src=token.txt --build-arg MARKER="$marker" . > "$OUT" 2>&1 &
build_pid=$!
for _ in $(seq 200); do pgrep -f "sleep 1000" >/dev/null && grep -qs "$marker" "$STORE"/containers/*/upper/started && break; sleep 0.1; done
grep -qs "$marker" "$STORE"/containers/*/upper/started || fail "the RUN did not start"
kill -9 "$build_pid"
wait "$build_pid" 2>/dev/null || true
gone=""
for _ in $(seq 100); do
  if ! grep -qs "$marker" /proc/[0-9]*/environ 2>/dev/null; then gone=1; break; fi
  sleep 0.1
done
[ -n "$gone" ] || fail "a process of the killed build's RUN is still running"
if grep -q "$STORE" /proc/self/mountinfo; then fail "a mount of the killed build remains"; fi
grep -rqs "the-secret-$marker" "$STORE"/containers || fail "the secret file was not where this test looks"
rb images >/dev/null
if grep -rqs "the-secret-$marker" "$STORE"; then fail "the killed build's secret is still in the store"; fi
printf 'FROM busybox\nRUN echo after > /after\n' > Dockerfile.after
build -t after -f Dockerfile.after .
file_is after /after after
[ -z "$(ls "$STORE/containers")" ] || fail "the dead sandbox's directory was not cleared: $(ls "$STORE/containers")"
