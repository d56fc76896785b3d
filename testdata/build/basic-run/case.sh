# A RUN writes a file; CMD lands in the config; a second build takes RUN from the cache.
build -t basic .
expect_output "Step 2/3 : RUN echo hello > /hello.txt"
step_ran 2
expect_output "Successfully tagged basic:latest"
file_is basic /hello.txt hello
run_is basic hello
config_is basic 'd["Config"]["Cmd"]' '["cat", "/hello.txt"]'
config_is basic '[h.get("empty_layer", False) for h in d["History"]][-2:]' '[false, true]'
build -t basic .
step_cached 2
# A stage that changes nothing in its base image is that image (same ID), as with Docker.
printf 'FROM busybox\n' > Dockerfile.only
build -t same -f Dockerfile.only .
[ "$(rb inspect same | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')" = \
  "$(rb inspect busybox | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')" ] ||
  fail "FROM busybox alone should give busybox's own image ID"
