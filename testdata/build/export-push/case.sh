# --output writes the result out: the final file system into a directory (-o DIR and
# type=local) or as a tar (type=tar), and image archives that skopeo reads
# (type=docker, type=oci); --push sends every -t name to its registry (docker-registry on
# the loopback here), where skopeo sees the same manifest digest.
command -v skopeo >/dev/null || fail "this case needs skopeo"
build -t ex -o "$WORK/rootfs" .
[ "$(cat "$WORK/rootfs/app/out.txt")" = exported ] || fail "-o DIR lacks /app/out.txt"
[ "$(stat -c %u:%g "$WORK/rootfs/app/out.txt")" = 5:6 ] || fail "-o DIR lost the owner"
[ -x "$WORK/rootfs/bin/busybox" ] || fail "-o DIR lacks the base image's files"
build -t ex --output "type=local,dest=$WORK/rootfs2" .
[ -f "$WORK/rootfs2/app/out.txt" ] || fail "type=local"
build -t ex --output "type=tar,dest=$WORK/fs.tar" .
tar -tf "$WORK/fs.tar" > "$WORK/fs.list" || fail "type=tar is not a tar"
grep -qx 'app/out.txt' "$WORK/fs.list" || fail "type=tar lacks app/out.txt"
build -t ex:1 --output "type=docker,dest=$WORK/image.tar" .
id="$(rb inspect ex:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
skopeo inspect --config "docker-archive:$WORK/image.tar" > "$WORK/docker-config.json" || fail "skopeo cannot read type=docker"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["config"]["Cmd"] == ["cat", "/app/out.txt"], c' "$WORK/docker-config.json" || fail "type=docker config"
build -t ex:1 --output "type=oci,dest=$WORK/image-oci.tar" .
skopeo inspect "oci-archive:$WORK/image-oci.tar:ex:1" > /dev/null 2>&1 || skopeo inspect "oci-archive:$WORK/image-oci.tar" > /dev/null || fail "skopeo cannot read type=oci"
rb build -q -t ex:1 --output type=tar . > "$WORK/stdout.tar" 2> "$WORK/stderr.txt" || fail "type=tar to standard output"
tar -tf "$WORK/stdout.tar" > "$WORK/stdout.list" || fail "type=tar on standard output is not a tar"
grep -qx 'app/out.txt' "$WORK/stdout.list" || fail "type=tar on standard output"
start_registry
build -t "$REGISTRY/pushed/ex:1" -t "$REGISTRY/pushed/ex:2" --push .
expect_output "The push refers to repository [$REGISTRY/pushed/ex]"
local_digest="$(rb inspect "$REGISTRY/pushed/ex:1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Descriptor"]["digest"])')"
for t in 1 2; do
  remote="$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/pushed/ex:$t")" || fail "skopeo inspect of the pushed :$t"
  [ "$remote" = "$local_digest" ] || fail "pushed :$t has $remote, the store $local_digest"
done
build_fails --push .
expect_output "--push needs at least one -t NAME"
