# rbuild history shows, for each step of an image built here, its step number, whether
# the last build ran it or took it from the cache, its time and cache key; --logs prints
# a step's whole kept log, never cut.
build -t hl .
rb history hl > hist.txt || fail "history"
grep -qE '^<missing> .*RUN \|?.*first line of the .*2 +ran +[0-9.]+s +[0-9a-f]{12}' hist.txt || { cat hist.txt; fail "history lacks the ran RUN row"; }
rb history --logs 2 hl > log.txt || fail "history --logs"
[ "$(head -1 log.txt)" = "first line of the log" ] || fail "log starts with $(head -1 log.txt)"
[ "$(tail -1 log.txt)" = "last line of the log" ] || fail "log ends with $(tail -1 log.txt)"
[ "$(wc -l < log.txt)" = 5002 ] || fail "the log has $(wc -l < log.txt) lines"
build -t hl .
rb history --format json hl > hist.json || fail "history --format json"
python3 - hist.json <<'PY' || fail "history JSON"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
run = [r for r in rows if r["CreatedBy"].startswith("RUN")][0]
assert run["Cached"] is True and run["Step"] == 2 and len(run["CacheKey"]) == 64, run
label = [r for r in rows if r["CreatedBy"].startswith("LABEL")][0]
assert label["CacheKey"] is None, label
PY
if rb history --logs 4 hl > /dev/null 2>&1; then fail "a LABEL step has no log"; fi
run_is hl "FROM busybox" head -1 /Dockerfile
