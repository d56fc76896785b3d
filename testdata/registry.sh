# Sourced by the test, example and benchmark scripts: serve_registry DIR starts Debian's
# docker-registry (distribution 2.8) on a free loopback port over plain HTTP, storing in
# DIR/data (emptied first), and waits until it answers (10 s at most). It sets REGISTRY
# (127.0.0.1:PORT) and REGISTRY_PID; stopping it is the caller's (kill "$REGISTRY_PID").
# Returns 1 when it does not start.
serve_registry() {
  local dir="$1" port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  REGISTRY="127.0.0.1:$port"
  rm -rf "$dir/data"
  mkdir -p "$dir"
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $REGISTRY
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
