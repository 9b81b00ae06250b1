#!/usr/bin/env bash
# Line coverage of the whole suite: unit, layer and integration tests on the real models, the
# server processes the integration tests start included (they are stopped with SIGTERM, so
# their counters are written). Source-based coverage of rustc (-C instrument-coverage), read
# with Debian's llvm-19 tools (installed when missing). Run scripts/test.sh once first (it sets
# up models, packages and fixtures). Prints the summary; the report is in
# target/coverage/html/index.html.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v llvm-cov-19 >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-19 >/dev/null
fi
out="$PWD/target/coverage"
rm -rf "$out" && mkdir -p "$out/profraw"
export CARGO_TARGET_DIR="$PWD/target/coverage-build"
export RUSTFLAGS="-C instrument-coverage"
export LLVM_PROFILE_FILE="$out/profraw/%p-%m.profraw"
# Timing-sensitive tests may fail on an instrumented build; what ran is counted either way.
cargo test --release --no-fail-fast 2>&1 | tee "$out/tests.log" | grep -E "^test result|FAILED|panicked"
mapfile -t binaries < <(cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
objects=(--object "$CARGO_TARGET_DIR/release/speech-service")
for b in "${binaries[@]}"; do objects+=(--object "$b"); done
llvm-profdata-19 merge -sparse "$out"/profraw/*.profraw -o "$out/all.profdata"
ignore='(\.cargo/|/rustc/|/target/|^fuzz/|/fuzz/|src/bin/|tests/)'
llvm-cov-19 show -format=html -output-dir="$out/html" -instr-profile="$out/all.profdata" \
    -ignore-filename-regex="$ignore" "${objects[@]}" 2>/dev/null
llvm-cov-19 report -instr-profile="$out/all.profdata" -ignore-filename-regex="$ignore" "${objects[@]}" \
    2>/dev/null | tee "$out/summary.txt" | tail -n 1
