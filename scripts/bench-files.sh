#!/bin/bash
# Live final latency with and without a long file being transcribed through
# /v1/audio/transcriptions (docs/BENCHMARKS.md, "Files beside live streams"). Needs ffmpeg
# (to make the 5-minute file), curl and bc; run after scripts/setup.sh.
cd "$(dirname "$0")/.."
work=$(mktemp -d)
B=./target/release/speech-service
[ -f "$work/long.wav" ] || ffmpeg -loglevel error -y -stream_loop 9 -i models/recordings/sample.wav -c copy "$work/long.wav"
SPEECH_DATA_DIR="$work/data" $B --log warn serve --port 8100 > "$work/server.log" 2>&1 &
S=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:8100/health >/dev/null && break; sleep 0.5; done
load() { $B --log warn load --url ws://127.0.0.1:8100/v1/listen --streams 4 --file models/recordings/jfk.wav --repeat 3 --stagger-ms 300 "$@"; }
echo "== 4 live streams alone"; load
echo "== 4 live streams while a 5-minute file is transcribed"
( start=$(date +%s.%N); curl -s http://127.0.0.1:8100/v1/audio/transcriptions -F file=@"$work/long.wav" -F model=whisper-1 -o "$work/file.json"; end=$(date +%s.%N); echo "file: $(echo "$end - $start" | bc) s for 300 s of audio" > "$work/file-time.txt" ) &
F=$!
sleep 2
load
wait $F
cat "$work/file-time.txt"
echo "== the file alone"
start=$(date +%s.%N); curl -s http://127.0.0.1:8100/v1/audio/transcriptions -F file=@"$work/long.wav" -F model=whisper-1 -o /dev/null; end=$(date +%s.%N); echo "file alone: $(echo "$end - $start" | bc) s"
kill $S; wait $S 2>/dev/null
