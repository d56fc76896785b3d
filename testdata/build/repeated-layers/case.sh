# The same RUN twice makes two layers with one diff ID (times are clamped by
# SOURCE_DATE_EPOCH, so they are identical): the stack must still mount, for the RUN
# after them and for `rbuild run`.
export SOURCE_DATE_EPOCH=1700000000
build -t rep .
file_is rep /a x
file_is rep /seen x
rb inspect rep | python3 -c '
import json, sys
layers = json.load(sys.stdin)[0]["RootFS"]["Layers"]
assert len(layers) == 4, layers
assert layers[1] == layers[2], "the two RUNs made one layer twice: %s" % layers
' || fail "the image does not repeat a layer"
