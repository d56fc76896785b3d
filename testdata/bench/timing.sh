# Sourced by the build benchmarks: wall times of runs, kept as microseconds in a variable.
now() { date +%s%N; }
# measure VAR LOG CMD...: runs CMD, its output to LOG (shown and the script ended when it
# fails), and appends its wall time (us) to VAR.
measure() {
  local var=$1 log=$2; shift 2
  local t0 t1
  sync
  t0=$(now)
  if ! "$@" >"$log" 2>&1; then
    echo "failed: $*" >&2; tail -30 "$log" >&2; exit 1
  fi
  t1=$(now)
  printf -v "$var" '%s %s' "${!var:-}" "$(( (t1 - t0) / 1000 ))"
}
# ms US...: the times in milliseconds; median: the median of the times on standard input, in seconds.
ms() { for us in "$@"; do printf ' %d' $((us / 1000)); done; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1e6}'; }
