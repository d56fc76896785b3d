# --no-cache runs every step; the next build uses what it made; the cache survives
# between runs of rbuild and `rbuild prune` (not `prune --build-cache`).
build -t nc .
first="$(rb run --rm nc cat /when.txt)"
build -t nc --no-cache .
step_ran 3
second="$(rb run --rm nc cat /when.txt)"
[ "$first" != "$second" ] || fail "--no-cache reused the RUN"
build -t nc .
step_cached 2; step_cached 3
file_is nc /when.txt "$second"
rb prune > /dev/null || fail "prune"
build -t nc .
step_cached 3
rb prune --build-cache > /dev/null || fail "prune --build-cache"
build -t nc .
step_ran 3
