# Sourced by the test, example and benchmark scripts: serve_registry DIR starts Debian's
# docker-registry (distribution 2.8) on a free loopback port over plain HTTP, storing in
# DIR/data (emptied first), and waits until it answers (10 s at most). It sets REGISTRY
# (127.0.0.1:PORT) and REGISTRY_PID; stopping it is the caller's (kill "$REGISTRY_PID").
# Returns 1 when it does not start.
serve_registry() {
  local dir="$1" port
  port="$(free_port)" || return 1
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

# free_port: a TCP port free on the loopback interface now, drawn at random from 20000-31999,
# below the kernel's ephemeral range (32768 up): binding port 0 would draw from the range
# every outgoing connection takes its source port from, and that tests running side by
# side draw from for their servers too, so another test's server or readiness probe could
# meet ours on the same port.
free_port() {
  python3 -c '
import random, socket, sys
for port in random.sample(range(20000, 32000), 500):
    try:
        socket.socket().bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    sys.exit(0)
sys.exit("no free port between 20000 and 31999")
'
}
