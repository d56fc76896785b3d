#!/usr/bin/env bash
# Fuzzes the parser and the lexer. Needs cargo-fuzz (`cargo install cargo-fuzz`) and a
# nightly toolchain. Usage: parser/fuzz/run.sh [SECONDS_PER_TARGET] (default 300).
# Seeds come from the BuildKit and real-world corpora and testdata; crashes land in
# parser/fuzz/artifacts/<target>/ -- copy each into parser/fuzz/regressions/ so that the
# regression test (parser/tests/fuzz_regressions.rs) replays it forever after.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-300}"
corpus_root="${RBUILD_CORPUS:-$root/../shared/corpus}"
mkdir -p "$here/corpus/parse" "$here/corpus/lexer"
find "$corpus_root" "$root/testdata/parser" -type f -name 'Dockerfile*' -size -64k -exec cp -t "$here/corpus/parse/" {} + 2>/dev/null || true
i=0; for f in "$corpus_root"/real-world/*/*; do cp "$f" "$here/corpus/parse/rw$i"; i=$((i+1)); done
grep -h '|' "$corpus_root/buildkit/frontend/dockerfile/shell/envVarTest" | cut -d'|' -f2 | while read -r w; do
  printf '\000%s' "$w" > "$here/corpus/lexer/$(printf '%s' "$w" | sha1sum | cut -c1-12)"; done
cd "$here"
for target in parse lexer; do
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=8192 -timeout=10
done
