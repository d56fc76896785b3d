# --network none (for the build) and RUN --network=none give RUN only a loopback
# interface; the default is the host's network, and RUN --network=host keeps it.
build -t nn .
file_is nn /ifaces-none.txt lo
[ "$(rb run --rm nn cat /ifaces-default.txt | wc -l)" -gt 1 ] || fail "the default network should be the host's"
build -t nn2 --network none --no-cache .
file_is nn2 /ifaces-default.txt lo
[ "$(rb run --rm nn2 cat /ifaces-host.txt)" -gt 1 ] || fail "RUN --network=host should see the host's interfaces even with --network none"
