# The base image's ID starts the chain of keys: the same name pointing at another image
# misses the cache.
build -t cbi .
step_ran 2
build -t cbi .
step_cached 2
printf 'FROM busybox\nRUN echo changed > /base-changed\n' > Dockerfile.base
build -t busybox:latest -f Dockerfile.base .
build -t cbi .
step_ran 2
file_is cbi /base-changed changed
