# -q prints only the image ID; --iidfile writes it; every -t names the image; --label
# adds labels; --progress json prints one JSON event per line.
id="$(rb build -q -t one -t two:2.0 -t localhost:5000/three --iidfile iid.txt --label added=1 .)" || fail "build -q"
case "$id" in sha256:*) ;; *) fail "-q printed [$id], not an image ID" ;; esac
[ "$(cat iid.txt)" = "$id" ] || fail "--iidfile holds $(cat iid.txt), not $id"
for name in one two:2.0 localhost:5000/three; do
  [ "$(rb inspect "$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')" = "$id" ] || fail "$name is not $id"
done
config_is one 'd["Config"]["Labels"]' '{"in.dockerfile": "yes", "added": "1"}'
rb build --progress json -t js . > "$OUT" 2>&1 || fail "json progress"
python3 - "$OUT" <<'PY' || fail "the JSON events"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kinds = [e["event"] for e in events]
assert kinds.count("step") == 3, kinds
assert "cached" in kinds and kinds[-1] == "built", kinds
assert events[-1]["id"].startswith("sha256:"), events[-1]
PY
file_is one /q.txt quiet
