#!/usr/bin/env bash
# Installs the reference Dockerfile parser (BuildKit's Go parser, wrapped for Python as
# `dockerfile` on PyPI) into a virtual environment that the differential tests use.
# Idempotent. The location can be changed with RBUILD_REFERENCE_VENV.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${RBUILD_REFERENCE_VENV:-$root/.cache/reference-venv}"
if "$venv/bin/python" -c 'import dockerfile' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'dockerfile==3.4.0'
"$venv/bin/python" -c 'import dockerfile' >/dev/null
echo "reference parser installed in $venv"
