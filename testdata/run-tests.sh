#!/usr/bin/env bash
# Runs rbuild's whole test suite: installs the reference parser the differential tests
# compare against (a Python virtual environment; needs python3 with venv and the PyPI
# registry), then every test of every crate. The shared corpus must be at ../shared/corpus
# (or RBUILD_CORPUS). Exit status: cargo test's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
bash testdata/reference/setup.sh
cargo test --workspace --locked
