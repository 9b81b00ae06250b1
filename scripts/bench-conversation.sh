#!/bin/bash
# Word-level and utterance latency, WER and partials at 1 and 8 live streams, on the test
# conversation (turns joined with no pause; wide and phone band) and on long read utterances
# (jfk.wav x3), for one or
# more server binaries, run one after another on the same machine (docs/BENCHMARKS.md,
# "Conversation"). The load generator of this checkout measures every binary.
#
#   scripts/bench-conversation.sh [BINARY[=CONFIG.toml] ...]     (default: this checkout's build)
#
# Writes OUT/NAME-RUN/load.{md,json} per binary, RUN being conversation, conversation-8k and
# jfk3; OUT is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/speech-service
out=$(mktemp -d)
$B --log warn eval conversation --out-dir "$out" >/dev/null
# The phone band as a line makes it (docs/BENCHMARKS.md, "Calls"): 8 kHz, 300-3400 Hz.
ffmpeg -loglevel error -i "$out/conversation.wav" -ar 8000 -af highpass=f=300,lowpass=f=3400 "$out/conversation-8k.wav"
server=
trap '[ -z "$server" ] || kill $server 2>/dev/null || true' EXIT
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
    for band in conversation conversation-8k; do
        load --file "$out/$band.wav" --reference "$out/conversation.txt" --out-dir "$out/$name-$band" >/dev/null
        sleep 15
    done
    load --file models/recordings/jfk.wav --repeat 3 --out-dir "$out/$name-jfk3" >/dev/null
    kill $server
    wait $server 2>/dev/null || true
    server=
    for run in conversation conversation-8k jfk3; do
        echo "== $name, $run"
        cat "$out/$name-$run/load.md"
    done
done
echo "figures in $out"
