#!/usr/bin/env bash
# One command to set everything up and serve: scripts/serve.sh [serve flags...]
# e.g. scripts/serve.sh --port 9000 --model base
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh tiny.en base
exec ./target/release/speech-service serve "$@"
