#!/usr/bin/env bash
# What persisting every final costs live streams (docs/BENCHMARKS.md, "Crash-safe
# transcripts"): the same load against the same binary with the store off and on (SQLite, a
# final appended as it is sent), alternating. Needs scripts/setup.sh first.
#
#   scripts/bench-store.sh [ROUNDS]     (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/speech-service
rounds=${1:-2}
run() {  # label, store.enabled
    local data; data=$(mktemp -d)
    SPEECH_STORE__ENABLED=$2 SPEECH_DATA_DIR=$data $B --log warn serve --port 8101 &
    local pid=$!
    until curl -fsS http://127.0.0.1:8101/health >/dev/null 2>&1; do sleep 0.2; done
    echo "== $1"
    $B --log warn load --url ws://127.0.0.1:8101/v1/listen --streams 4 --file models/recordings/jfk.wav \
        --repeat 3 --stagger-ms 300
    kill -TERM $pid; wait $pid || true
    rm -rf "$data"
}
for _ in $(seq "$rounds"); do
    run "store off" false
    run "store on (every final appended)" true
done
