# ADD of an http URL, from a server on the loopback: the file is named after the URL's
# last path element when the destination is a directory, gets mode 600, and archives are
# extracted only with --unpack=true; --checksum checks the download. A changed file on
# the server misses the cache (the failed build already made those steps anew); a
# missing one fails.
mkdir -p www && echo "served content" > www/served.txt && tar -C www -czf www/served.tar.gz served.txt
port="$(free_port)"
python3 -m http.server "$port" --bind 127.0.0.1 --directory www >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.1; done
sum="sha256:$(sha256sum www/served.txt | cut -d' ' -f1)"
build -t url --build-arg PORT="$port" --build-arg SUM="$sum" .
file_is url /downloads/served.txt "served content"
file_is url /extracted/served.txt "served content"
file_is url /checked.txt "served content"
file_is url /renamed.txt "served content"
stat_is url /renamed.txt %a 600
run_is url "served.tar.gz" ls /not-extracted
build -t url --build-arg PORT="$port" --build-arg SUM="$sum" .
step_cached 4
echo "changed" > www/served.txt
build_fails -t url --build-arg PORT="$port" --build-arg SUM="$sum" .
expect_output "has the checksum sha256:"
sum="sha256:$(sha256sum www/served.txt | cut -d' ' -f1)"
build -t url --build-arg PORT="$port" --build-arg SUM="$sum" .
file_is url /renamed.txt changed
file_is url /checked.txt changed
printf 'FROM busybox\nADD http://127.0.0.1:%s/nothing-here /x\n' "$port" > Dockerfile.missing
build_fails -f Dockerfile.missing .
expect_output "404"
