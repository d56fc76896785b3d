# RUN --mount: cache directories persist between builds and never enter a layer (an id
# shares one between targets; `prune --cache-mounts` empties them); bind mounts from the
# context (read-only, .dockerignore applied; rw writes thrown away), from a stage and from
# an image; tmpfs; a cache seeded from a stage (from=, source=), with a mode and owner, and
# read-only (ro); private sharing (a second user of a busy cache gets its own directory). Mount points leave nothing in the image, and a bind source's content
# is in the RUN's cache key.
build -t m .
file_is m /cache-log.txt "run 1"
file_is m /same.txt same
file_is m /bound.txt "bound content"
file_is m /bound-list.txt "bound.txt"
file_is m /bind-ro.txt read-only
file_is m /rw-seen.txt scribble
[ "$(cat src/bound.txt)" = "bound content" ] || fail "an rw bind mount wrote into the context"
file_is m /from-stage.txt "from a stage"
file_is m /from-image.txt from-image
file_is m /tmpfs.txt tmpfs
file_is m /tmpfs-size.txt 1024
file_is m /private.txt private
file_is m /seeded.txt "from a stage"
file_is m /owned.txt 750:65534:65534
file_is m /cache-ro.txt read-only
for p in /var/cache/app/log /a /b /mnt /tools /bb /scratch; do absent m "$p"; done
build -t m --build-arg RUNID=2 .
file_is m /cache-log.txt "run 1
run 2"
echo "bound changed" > src/bound.txt
build -t m --build-arg RUNID=2 .
step_cached 5; step_cached 6; step_ran 7
file_is m /bound.txt "bound changed"
echo "hidden changed" > src/hidden.txt
build -t m --build-arg RUNID=2 .
step_cached 7
rb prune --cache-mounts > /dev/null || fail "prune --cache-mounts"
build -t m --build-arg RUNID=3 .
file_is m /cache-log.txt "run 3"
