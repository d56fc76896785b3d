#!/usr/bin/env bash
# The seeds' walk-through, end to end, as root on Debian with the Debian mirror: a Debian
# 12 base made with debootstrap (testdata/images/make-debian.sh, kept in .cache/), the
# database image built with `rbuild -t pkoin/percona-server .` (then again, every step
# from the cache), `rbuild run -d -p 3306:3306` of it, the MariaDB client on the host
# creating a database and a table, the container stopped and started, and the data found
# again. Prints the query results and the timings; exits 1 when a step fails. The store
# is .cache/percona/store. Usage: testdata/examples/percona/run.sh (PORT=3306 by default;
# RBUILD=path/to/rbuild skips building it)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "percona/run.sh: run as root (debootstrap, the sandbox)" >&2; exit 1; }
need=()
command -v mariadb >/dev/null || need+=(mariadb-client)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
[ ${#need[@]} -eq 0 ] || bash "$root/testdata/apt-install.sh" "${need[@]}"
port="${PORT:-3306}"
# RBUILD: an rbuild already built (the test suite's); else a release build.
rbuild="${RBUILD:-}"
if [ -z "$rbuild" ]; then
  (cd "$root" && cargo build --quiet --release -p rbuild)
  rbuild="$root/target/release/rbuild"
fi
work="$root/.cache/percona"
store="$work/store"
r() { "$rbuild" --root "$store" "$@"; }
ms() { date +%s%3N; }
cleanup() { r rm -f -v percona >/dev/null 2>&1 || true; }
trap cleanup EXIT
mkdir -p "$work/base"
bash "$root/testdata/images/make-debian.sh" "$root/.cache/debian-bookworm-minbase.tar"
cp "$root/.cache/debian-bookworm-minbase.tar" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/base/Dockerfile"
r build -q -t rbuild-examples/debian:bookworm "$work/base" >/dev/null
cleanup
echo "== rbuild -t pkoin/percona-server ."
start=$(ms)
(cd "$here" && "$rbuild" --root "$store" build --no-cache -t pkoin/percona-server .)
build_ms=$(( $(ms) - start ))
start=$(ms)
(cd "$here" && "$rbuild" --root "$store" build -t pkoin/percona-server . | grep -c "Using cache" | sed 's/^/steps from the cache: /')
rebuild_ms=$(( $(ms) - start ))
echo "== rbuild run -d -p $port:3306 --name percona pkoin/percona-server"
start=$(ms)
r run -d --name percona -p "$port:3306" -e MYSQL_ROOT_PASSWORD=secret pkoin/percona-server
sql() { mariadb -h 127.0.0.1 -P "$port" -uroot -psecret --batch "$@"; }
wait_ready() {
  for _ in $(seq 240); do sql -e 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "the server did not answer within 60 s; its log:" >&2
  r logs percona >&2 || true
  return 1
}
wait_ready
start_ms=$(( $(ms) - start ))
sql -e "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO shop.items VALUES (1, 'kettle'), (2, 'teapot');"
echo "== the table, from the host's client"
sql -e 'SELECT * FROM shop.items ORDER BY id'
r ps --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'
echo "== rbuild stop percona; rbuild start percona"
r stop percona >/dev/null
start=$(ms)
r start percona >/dev/null
wait_ready
restart_ms=$(( $(ms) - start ))
echo "== the table after the restart"
got="$(sql -e 'SELECT name FROM shop.items ORDER BY id' | tr '\n' ' ')"
echo "$got"
[ "$got" = "name kettle teapot " ] || { echo "the data did not survive the restart" >&2; exit 1; }
echo "timings: build ${build_ms} ms, cached rebuild ${rebuild_ms} ms, run -d to first answer ${start_ms} ms, start to first answer ${restart_ms} ms"
echo "percona example: ok"
