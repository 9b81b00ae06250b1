#!/usr/bin/env bash
# One command to set everything up and run the whole test suite on the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh tiny.en base
cargo test --release
