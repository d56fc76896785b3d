# The default network is a namespace of the step's own: loopback and slirp4netns's tap0.
# --network none (for the build) and RUN --network=none give RUN only a loopback
# interface. RUN --network=host needs --allow network.host (as BuildKit's entitlement),
# and then sees the host's own interfaces.
build_fails -t nn .
expect_output "RUN --network=host needs --allow network.host"
build -t nn --allow network.host .
file_is nn /ifaces-default.txt "lo
tap0"
file_is nn /ifaces-none.txt lo
host_ifaces="$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort)"
file_is nn /ifaces-host.txt "$host_ifaces"
build -t nn2 --network none --allow network.host --no-cache .
file_is nn2 /ifaces-default.txt lo
file_is nn2 /ifaces-host.txt "$host_ifaces"
