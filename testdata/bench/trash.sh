# Sourced by the build benchmarks. Storage is never deleted between measured runs: a cold
# run gets fresh storage and the old one is moved into TRASH (discard DIR), emptied when
# the script ends (empty_trash), and a script waits until the last emptying, its own or
# another benchmark's, is 5.5 minutes old before it starts (wait_for_quiet_inodes). On ext4 without a journal, as
# here, the kernel will not reuse an inode freed in the last 5 minutes while its
# inode-table block is dirty, and scans past every such inode for each new file: after a
# 60,000-file `rm -rf` the next build of every tool ran up to 50% slower, mostly in
# `find_inode_bit` and `recently_deleted`. Set TRASH (a folder in the work directory)
# before use.

# discard DIR: moves DIR out of the way (a rename).
discard() { mkdir -p "$TRASH"; [ ! -e "$1" ] || mv "$1" "$TRASH/$(date +%s%N)"; }

# When any benchmark on this machine last emptied its trash (each works in its own
# folder, and one ran right after another's deletion otherwise).
LAST_EMPTIED="${TMPDIR:-/tmp}/rbuild-bench-trash.emptied"

# Unmounts what a tool left in the trash, empties it and notes when.
empty_trash() {
  awk -v t="$TRASH/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$TRASH"
  date +%s >"$TRASH.emptied"
  date +%s >"$LAST_EMPTIED"
}

# Empties what a killed run left, then waits until the last emptying (this benchmark's
# or another's) is 5.5 minutes old.
wait_for_quiet_inodes() {
  local wait last=0 f
  [ ! -e "$TRASH" ] || empty_trash
  for f in "$TRASH.emptied" "$LAST_EMPTIED"; do
    if [ -f "$f" ] && [ "$(cat "$f")" -gt "$last" ]; then last=$(cat "$f"); fi
  done
  [ "$last" -gt 0 ] || return 0
  wait=$(( last + 330 - $(date +%s) ))
  if [ "$wait" -gt 0 ]; then
    echo "waiting ${wait}s: storage was deleted less than 5.5 minutes ago (see testdata/bench/trash.sh)" >&2
    sleep "$wait"
  fi
}
