# Sourced by the scripts that run a docker daemon of their own (the differential suite,
# the in-container tests). start_dockerd DIR [PATH-PREFIX] starts `dockerd` (found on
# PATH-PREFIX first, else the system's) with its data root, exec root, socket and pid file
# in DIR, no iptables and no bridge, and waits until it answers (60 s at most); it exports
# DOCKER_HOST. stop_dockerd DIR stops it, unmounts what it left below DIR and removes DIR.
start_dockerd() {
  local dir="$1" prefix="${2:-}"
  setsid env PATH="${prefix:+$prefix:}$PATH" dockerd --host "unix://$dir/docker.sock" \
    --data-root "$dir/docker" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --iptables=false --ip6tables=false --bridge=none --storage-driver overlay2 \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  export DOCKER_HOST="unix://$dir/docker.sock"
  for _ in $(seq 120); do /usr/bin/docker version >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -20 "$dir/dockerd.log" >&2
  return 1
}

stop_dockerd() {
  local dir="$1"
  [ -f "$dir/dockerd.pid" ] && kill "$(cat "$dir/dockerd.pid")" 2>/dev/null || true
  sleep 1
  awk -v w="$dir/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}
