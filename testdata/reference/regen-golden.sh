#!/usr/bin/env bash
# Writes testdata/parser/<case>/expected.json from the reference parser (never from rbuild):
# {"records": [...]} when the reference parses the case, {"error": "..."} when it refuses it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bash "$here/setup.sh"
venv="${RBUILD_REFERENCE_VENV:-$root/.cache/reference-venv}"
cd "$root/testdata/parser"
for case in */; do
  case="${case%/}"
  [ -f "$case/Dockerfile" ] || continue
  "$venv/bin/python" - "$case/Dockerfile" > "$case/expected.json" <<'PY'
import json, subprocess, sys
path = sys.argv[1]
sys.path.insert(0, "../reference")
import records
import io, contextlib
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    records.main([path])
result = json.loads(buf.getvalue())[path]
print(json.dumps(result, ensure_ascii=False, indent=1))
PY
done
echo "regenerated $(ls -d */ | wc -l) golden cases"
