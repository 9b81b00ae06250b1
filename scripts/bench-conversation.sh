#!/bin/bash
# Word-level and utterance latency, WER and partials at 1 and 8 live streams, on the test
# conversation (turns joined with no pause) and on long read utterances (jfk.wav x3), for one or
# more server binaries, run one after another on the same machine (docs/BENCHMARKS.md,
# "Conversation"). The load generator of this checkout measures every binary.
#
#   scripts/bench-conversation.sh [BINARY[=CONFIG.toml] ...]     (default: this checkout's build)
#
# Writes OUT/NAME-conversation.{md,json} and OUT/NAME-jfk3.{md,json} per binary; OUT is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/speech-service
out=$(mktemp -d)
$B --log warn eval conversation --out-dir "$out" >/dev/null
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=("$B")
for entry in "${servers[@]}"; do
    binary=${entry%%=*}
    config=$([ "$entry" != "$binary" ] && echo "--config=${entry#*=}" || true)
    name=$(basename "$binary")$([ -n "$config" ] && echo "-$(basename "${entry#*=}" .toml)" || true)
    SPEECH_DATA_DIR="$out/data-$name" "$binary" $config --log warn serve --port 8107 >"$out/$name.log" 2>&1 &
    server=$!
    for _ in $(seq 120); do curl -sf http://127.0.0.1:8107/health/ready >/dev/null && break; sleep 0.5; done
    # Levels 15 s apart: admission looks at the last 10 s of finals, and the conversation's
    # finals (a run of turns ends only at the recording's end) are late enough to close it.
    load() { $B --log warn load --url ws://127.0.0.1:8107/v1/listen --streams 1,8 --pause-s 15 --diarize true "$@"; }
    load --file "$out/conversation.wav" --reference "$out/conversation.txt" --out-dir "$out/$name-conversation" >/dev/null
    sleep 15
    load --file models/recordings/jfk.wav --repeat 3 --out-dir "$out/$name-jfk3" >/dev/null
    kill $server
    wait $server 2>/dev/null || true
    for run in conversation jfk3; do
        echo "== $name, $run"
        cat "$out/$name-$run/load.md"
    done
done
echo "figures in $out"
