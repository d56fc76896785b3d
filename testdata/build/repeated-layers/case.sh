# The same RUN twice makes two layers with one diff ID (times are clamped by
# SOURCE_DATE_EPOCH, so they are identical): the stack must still mount, for the RUN
# after them and for `rbuild run`. (The first RUN makes the mount points /proc, /sys and
# /dev that busybox lacks, as BuildKit's first RUN does.)
export SOURCE_DATE_EPOCH=1700000000
build -t rep .
file_is rep /a x
file_is rep /seen x
rb inspect rep | python3 -c '
import json, sys
layers = json.load(sys.stdin)[0]["RootFS"]["Layers"]
assert len(layers) == 5, layers
assert layers[2] == layers[3], "the two RUNs made one layer twice: %s" % layers
' || fail "the image does not repeat a layer"
