# ADD of an http URL, from a server on the loopback: the file is named after the URL's
# last path element when the destination is a directory, gets mode 600, and archives are
# not extracted. A changed file on the server misses the cache; a missing one fails.
mkdir -p www && echo "served content" > www/served.txt && tar -C www -czf www/served.tar.gz served.txt
port="$(free_port)"
python3 -m http.server "$port" --bind 127.0.0.1 --directory www >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.1; done
build -t url --build-arg PORT="$port" .
file_is url /downloads/served.txt "served content"
file_is url /renamed.txt "served content"
stat_is url /renamed.txt %a 600
run_is url "served.tar.gz" ls /not-extracted
build -t url --build-arg PORT="$port" .
step_cached 4
echo "changed" > www/served.txt
build -t url --build-arg PORT="$port" .
step_not_cached 4
file_is url /renamed.txt changed
printf 'FROM busybox\nADD http://127.0.0.1:%s/nothing-here /x\n' "$port" > Dockerfile.missing
build_fails -f Dockerfile.missing .
expect_output "404"
