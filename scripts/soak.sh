#!/usr/bin/env bash
# Soak test (by hand or nightly; a few minutes, so not in the test command): starts the real
# server on a fresh data directory with a 2 s idle timeout and runs `soak` against it
# (default 1000 mixed sessions, 6 at once). Prints the server's memory, descriptors and threads
# before, after the first 50 sessions and at the end, and fails if any check fails.
#   scripts/soak.sh [SESSIONS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-1000}
concurrency=${2:-6}
cargo build --release --quiet --bin speech-service --bin soak
data=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
SPEECH_DATA_DIR="$data" SPEECH_LIMITS__IDLE_TIMEOUT_S=2 \
    target/release/speech-service --log warn --models-dir models serve --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "soak: $sessions sessions, $concurrency at once, against pid $server ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
target/release/soak --url "http://127.0.0.1:$port" --pid "$server" --sessions "$sessions" \
    --concurrency "$concurrency" --recording models/recordings/jfk.wav
