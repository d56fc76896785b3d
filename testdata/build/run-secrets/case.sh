# RUN --mount=type=secret: the value is readable in the RUN (as a file, default
# /run/secrets/ID, mode 0400; or an environment variable), and absent from every layer,
# the config, the history, the cache records and the build records. A required secret
# that is missing fails the build. RUN --mount=type=ssh forwards an agent socket.
printf 's3cr3t-file-value' > "$WORK/token.txt"
export API_SECRET_VALUE=s3cr3t-env-value
sock="$WORK/agent.sock"
python3 -c 'import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); time.sleep(120)' "$sock" &
agent=$!
trap 'kill $agent 2>/dev/null' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
build -t sec --secret id=token,src="$WORK/token.txt" --secret id=api,env=API_SECRET_VALUE --ssh default="$sock" .
file_is sec /file-ok.txt file-ok
file_is sec /secret-mode.txt 400
file_is sec /env-ok.txt env-ok
file_is sec /custom-ok.txt custom-ok
file_is sec /optional.txt "an optional secret that is missing is left out"
file_is sec /ssh.txt /run/buildkit/ssh_agent.0
absent sec /run/secrets/token
absent sec /etc/app/token
rb save -o "$WORK/saved.tar" sec || fail "save"
mkdir -p "$WORK/saved" && tar -xf "$WORK/saved.tar" -C "$WORK/saved"
for blob in "$WORK"/saved/blobs/sha256/*; do
  zcat -f "$blob" > "$WORK/blob.plain" 2>/dev/null || cp "$blob" "$WORK/blob.plain"
  if grep -qa "s3cr3t" "$WORK/blob.plain"; then fail "a secret is in the saved image ($blob)"; fi
done
if grep -rqa "s3cr3t" "$STORE/cache" "$STORE/builds" "$STORE/blobs" "$STORE/snapshots" 2>/dev/null; then
  fail "a secret is in the store: $(grep -rla s3cr3t "$STORE" | head -3)"
fi
grep -qa "s3cr3t" "$OUT" && fail "a secret is in the build output"
printf 'FROM busybox\nRUN --mount=type=secret,id=needed,required cat /run/secrets/needed\n' > Dockerfile.required
build_fails -f Dockerfile.required .
expect_output "secret needed is required but was not given"
