#!/usr/bin/env bash
# rbuild's main job on the bundled multi-stage example: read the Dockerfile, check every
# instruction and stage, and print its syntax tree and its stage graph (the build order
# the builder will follow). Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$root"
cargo build --quiet --release -p rbuild
example=testdata/examples/multistage/Dockerfile
echo "== BuildKit AST dump of $example"
./target/release/rbuild parse --validate --format dump "$example"
echo
echo "== stage graph (Graphviz DOT)"
./target/release/rbuild parse --format dot "$example"
echo
echo "== stages needed for --target test"
./target/release/rbuild parse --format dot --target test "$example"
