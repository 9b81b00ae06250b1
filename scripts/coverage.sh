#!/usr/bin/env bash
# Line coverage of the whole suite (unit, layer and integration tests on the real models), with
# cargo-tarpaulin's LLVM engine, which also counts the server processes the integration tests
# start. Installs cargo-tarpaulin from crates.io when missing. Run scripts/test.sh once first
# (it sets up models, packages and fixtures). Report: target/coverage/tarpaulin-report.html
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-tarpaulin >/dev/null || cargo install cargo-tarpaulin --locked --version 0.37.5
cargo tarpaulin --engine llvm --release --skip-clean --target-dir target/coverage-build \
    --exclude-files 'src/bin/*' --exclude-files 'fuzz/*' \
    --out Html --out Json --output-dir target/coverage --no-fail-fast --timeout 900 "$@"
