# Large context files are copied while they are hashed for the step's cache key, and
# the step moves those copies into its layer: every copy has the file's content, a file
# named twice gets its content twice, --chmod applies, hard links stay one file, a
# cached rebuild leaves the copies unused, and a changed file's new content goes in.
head -c 3000000 /dev/urandom >big.bin
head -c 2000000 /dev/urandom >big2.bin
ln big2.bin linked.bin
mkdir -p tree/sub
head -c 1500000 /dev/urandom >tree/sub/deep.bin
echo small >tree/small.txt
sum() { md5sum "$1" | cut -d' ' -f1; }
check() {
  local image=$1
  run_is "$image" "$(sum big.bin)" sh -c 'md5sum /one/big.bin | cut -d" " -f1'
  run_is "$image" "$(sum big.bin)" sh -c 'md5sum /twice/big.bin | cut -d" " -f1'
  run_is "$image" "$(sum big.bin) 640" sh -c 'echo $(md5sum /moded.bin | cut -d" " -f1) $(stat -c %a /moded.bin)'
  run_is "$image" "$(sum big2.bin) 2" sh -c 'echo $(md5sum /linked/linked.bin | cut -d" " -f1) $(stat -c %h /linked/big2.bin)'
  run_is "$image" "$(sum tree/sub/deep.bin)" sh -c 'md5sum /tree/sub/deep.bin | cut -d" " -f1'
  run_is "$image" "small" cat /tree/small.txt
}
build -t staged .
check staged
build -t staged .
for n in 2 3 4 5 6; do step_cached "$n"; done
check staged
# The same content, a new file: the step is cached by content (the copy made for it is
# not used); then new content.
cp big.bin big.tmp && mv big.tmp big.bin
build -t staged .
step_cached 2
head -c 3000000 /dev/urandom >big.bin
build -t staged .
step_not_cached 2
check staged
[ -z "$(find "$STORE/tmp" -name staged 2>/dev/null)" ] \
  || fail "staged copies were left in the store: $(find "$STORE/tmp" -name staged)"
