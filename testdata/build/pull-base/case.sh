# A base image missing from the store is pulled through the registry client (here from
# docker-registry on the loopback); --pull pulls it again even when present, and a newer
# image under the same name then misses the cache.
start_registry
rb push busybox "$REGISTRY/base/busybox:1.0" > /dev/null || fail "push"
build -t pb --build-arg REGISTRY="$REGISTRY" .
expect_output "Pulling $REGISTRY/base/busybox:1.0"
file_is pb /pulled.txt "built on the pulled base"
build -t pb --build-arg REGISTRY="$REGISTRY" .
expect_no_output "Pulling"
step_cached 2
printf 'FROM busybox\nRUN echo v2 > /v2\n' > Dockerfile.v2
build -t "$REGISTRY/base/busybox:1.0" -f Dockerfile.v2 .
rb push "$REGISTRY/base/busybox:1.0" > /dev/null || fail "push v2"
rb rmi "$REGISTRY/base/busybox:1.0" > /dev/null || fail "rmi"
printf 'FROM busybox\nRUN echo v3 > /v3\n' > Dockerfile.v3
build -t "$REGISTRY/base/busybox:1.0" -f Dockerfile.v3 .
build -t pb --pull --build-arg REGISTRY="$REGISTRY" .
expect_output "Pulling $REGISTRY/base/busybox:1.0"
step_ran 2
file_is pb /v2 v2
absent pb /v3
printf 'FROM %s/nothing/here:1\n' "$REGISTRY" > Dockerfile.missing
build_fails -f Dockerfile.missing .
expect_output "nothing/here"
