#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, runs the CUDA binary's engines on the GPU
# (checked results, not just timings), then the load tool's sweep and a file benchmark, and
# writes every figure to one file, target/gpu-check/gpu-check.md (with load.json per model).
# Meant to finish in under 8 minutes on one GPU. Needs no Rust toolchain when the binary is
# there already (docs/DEPLOY.md, "GPUs", says how to carry it).
#
#   scripts/gpu-check.sh
#   GPU_CHECK_MODELS="tiny.en models/whisper/ggml-base-q8_0.bin" GPU_CHECK_STREAMS=1,8,32 scripts/gpu-check.sh
#
# Settings (environment): SPEECH_CUDA_BIN (default target/cuda/release/speech-service, built with
# scripts/build-cuda.sh when missing and cargo is there), SPEECH_MODELS_DIR (default models),
# GPU_CHECK_MODELS (default "tiny.en base": names or ggml paths; those not present are skipped),
# GPU_CHECK_STREAMS (default 1,8,32,64,128,256), GPU_CHECK_WORKERS (ASR workers: one number, or
# several, e.g. "2 4 8", for a sweep at each; default 4).
# GPU_CHECK_DEVICE=cpu rehearses the whole check with the CPU build on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
out=target/gpu-check
device=${GPU_CHECK_DEVICE:-cuda}
default_bin=target/cuda/release/speech-service
[ "$device" = cpu ] && default_bin=target/release/speech-service
bin=${SPEECH_CUDA_BIN:-$default_bin}
models_dir=${SPEECH_MODELS_DIR:-models}
read -r -a whisper_models <<<"${GPU_CHECK_MODELS:-tiny.en base}"
streams=${GPU_CHECK_STREAMS:-1,8,32,64,128,256}
read -r -a worker_counts <<<"${GPU_CHECK_WORKERS:-4}"
report=$out/gpu-check.md
failures=0
rm -rf "$out" && mkdir -p "$out"

say() { echo "gpu-check: $*" >&2; }
elapsed() { echo $(($(date +%s) - started)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }
fail() {
    say "FAILED: $*"
    echo "- **FAILED**: $*" >>"$report"
    failures=$((failures + 1))
}
pass() { echo "- passed: $*" >>"$report"; }

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1) || true
[ "$device" = cpu ] && gpu="none: a rehearsal on the CPU"
[ -n "$gpu" ] || { say "no NVIDIA GPU here (nvidia-smi finds none)"; exit 2; }

# What scripts/gpu-bundle.sh packed, when it was carried here in parts.
bundle=target/gpu-bundle
if [ ! -x "$bin" ] && [ -f "$bundle/speech-service.xz" ]; then
    mkdir -p "$(dirname "$bin")"
    xz -dc "$bundle/speech-service.xz" >"$bin" && chmod +x "$bin"
fi
for part in "$bundle"/models-*.tar.xz; do
    [ -f "$part" ] && mkdir -p "$models_dir" && tar -C "$models_dir" -xJf "$part"
done

if [ ! -x "$bin" ]; then
    command -v cargo >/dev/null || { say "no CUDA binary at $bin and no cargo to build it (see docs/DEPLOY.md, GPUs)"; exit 2; }
    CUDA_ARCHS=${CUDA_ARCHS:-90} scripts/build-cuda.sh
    bin=target/cuda/release/speech-service
fi

# The CUDA 13 libraries: this repo's toolkit when built here, else NVIDIA's wheels in any
# Python site-packages (a PyTorch install has them).
lib_dirs=$(python3 - <<'EOF' 2>/dev/null || true
import glob, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
seen = []
for root in roots:
    for d in glob.glob(f"{root}/nvidia/*/lib") + glob.glob(f"{root}/nvidia/cu13/lib"):
        if d not in seen:
            seen.append(d)
print(":".join(seen))
EOF
)
[ -d target/cuda-toolkit/site/nvidia/cu13/lib ] && lib_dirs="$PWD/target/cuda-toolkit/site/nvidia/cu13/lib:$lib_dirs"
export LD_LIBRARY_PATH="${lib_dirs}:${LD_LIBRARY_PATH:-}"
missing=$(ldd "$bin" | grep "not found" || true)
[ -z "$missing" ] || { say "libraries the binary needs are missing:"; echo "$missing" >&2; exit 2; }

# ONNX Runtime (unless SPEECH_ENGINE__ONNXRUNTIME_LIBRARY names one): the fetched GPU build,
# else Python's onnxruntime-gpu, else the fetched CPU one, else Python's CPU onnxruntime
# (segmentation then stays on the CPU under `auto`).
python_ort=$(python3 -c 'import onnxruntime, glob, os; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])' 2>/dev/null || true)
python_has_cuda=$(python3 -c 'import onnxruntime as o; print("CUDAExecutionProvider" in o.get_available_providers())' 2>/dev/null || true)
ort=${SPEECH_ENGINE__ONNXRUNTIME_LIBRARY:-}
for candidate in "$models_dir"/onnxruntime-gpu/libonnxruntime.so.*; do
    [ -z "$ort" ] && [ -f "$candidate" ] && ort=$candidate
done
[ -z "$ort" ] && [ "$python_has_cuda" = True ] && ort=$python_ort
gpu_ort=false
[ -n "$ort" ] && { [[ "$ort" == */onnxruntime-gpu/* ]] || { [ "$ort" = "$python_ort" ] && [ "$python_has_cuda" = True ]; }; } && gpu_ort=true
for candidate in "$models_dir"/onnxruntime/libonnxruntime.so.*; do
    [ -z "$ort" ] && [ -f "$candidate" ] && ort=$candidate
done
[ -z "$ort" ] && ort=$python_ort
[ -n "$ort" ] || { say "no ONNX Runtime library (models fetch, or pip's onnxruntime)"; exit 2; }
# `cuda` refuses an ONNX Runtime without the CUDA provider; with a CPU-only one the check runs
# `auto`, which keeps segmentation on the CPU, and still requires Whisper on the GPU.
run_device=$device
[ "$device" = cuda ] && [ "$gpu_ort" = false ] && run_device=auto
export SPEECH_ENGINE__ONNXRUNTIME_LIBRARY=$ort SPEECH_MODELS_DIR=$models_dir SPEECH_LOG=warn

recordings=$models_dir/recordings
{
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "GPU: $gpu. Binary: $bin. ONNX Runtime: $ort (CUDA provider: $gpu_ort). Device: $run_device."
    echo "ASR workers: ${worker_counts[*]}. Streams: $streams (jfk.wav, 11 s, speakers on)."
    echo
    echo "## Checks"
} >"$report"

# The server on the GPU with model $1 and $3 ASR workers; its address goes to $address.
start_server() {
    local model=$1 log=$out/serve-$2.log workers=$3
    SPEECH_DATA_DIR=$(mktemp -d) SPEECH_ASR__WORKERS=$workers SPEECH_LIMITS__MAX_SESSIONS=300 \
        "$bin" --log-format json --log info serve --port 0 --device "$run_device" --model "$model" >"$log" 2>&1 &
    server=$!
    for _ in $(seq 1 120); do
        address=$(grep -o '"address":"[^"]*"' "$log" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
        [ -n "$address" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.5
    done
    fail "$model: the server did not start on $device: $(tail -c 600 "$log")"
    return 1
}

check_model() {
    local model=$1 tag
    tag=$(basename "$model" .bin)
    say "$model: offline checks"
    local t0 took text wer
    export SPEECH_ENGINE__DEVICE=$run_device
    t0=$(now_ms)
    text=$("$bin" --log info transcribe "$recordings/jfk.wav" --model "$model" --no-diarize --format text 2>"$out/transcribe-$tag.log") \
        || { fail "$model: transcribe on $device: $(tail -c 400 "$out/transcribe-$tag.log")"; return; }
    took=$(seconds_since "$t0")
    if [ "$device" = cuda ] && ! grep -q "inference on a GPU" "$out/transcribe-$tag.log"; then
        fail "$model: transcribe did not run on the GPU: $(grep -m1 "inference on" "$out/transcribe-$tag.log")"
    fi
    wer=$("$bin" eval wer --reference "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country." --hypothesis "$text" | head -1)
    case "$wer" in
        "WER 0.00%"* | "WER "[0-9].*) pass "$model: jfk.wav transcribed on $device, $wer, $took s with start-up" ;;
        *) fail "$model: jfk.wav $wer: $text" ;;
    esac
    local der
    if "$bin" transcribe "$recordings/sample.wav" --model "$model" --format rttm >"$out/sample-$tag.rttm" 2>>"$out/transcribe-$tag.log"; then
        der=$("$bin" eval der --reference "$recordings/sample.rttm" --hypothesis "$out/sample-$tag.rttm" | head -1)
        # The CPU build scores 1.3% on this call (docs/BENCHMARKS.md); 10% means the speakers broke.
        if awk -v d="$der" 'BEGIN { split(d, f, " "); exit !((f[2] + 0) <= 10) }'; then
            pass "$model: the call's speakers on $device: $der"
        else
            fail "$model: the call's speakers on $device: $der"
        fi
    else
        fail "$model: speakers on $device: $(tail -c 400 "$out/transcribe-$tag.log")"
    fi
    # The file benchmark: the 34 s call, three runs, speakers on (start-up included).
    local runs=()
    for _ in 1 2 3; do
        t0=$(now_ms)
        "$bin" transcribe "$recordings/sample.wav" --model "$model" --format text >/dev/null 2>&1 || true
        runs+=("$(seconds_since "$t0")")
    done
    echo "- file benchmark, $model: sample.wav (34 s) in ${runs[*]} s (three runs, start-up included)" >>"$report"

    local workers
    for workers in "${worker_counts[@]}"; do
        live_checks "$model" "$tag-w$workers" "$workers"
    done
    say "$model done at $(elapsed) s"
}

# /health/detailed on the device, then the load sweep, for one model and worker count.
live_checks() {
    local model=$1 tag=$2 workers=$3
    say "$model, $workers workers: live checks and the load sweep"
    start_server "$model" "$tag" "$workers" || return
    local health expected='"used":"cuda:0"'
    [ "$device" = cpu ] && expected='"used":"cpu"'
    health=$(curl -s "http://$address/health/detailed")
    if grep -q "$expected" <<<"$health"; then
        pass "$model: /health/detailed: $(python3 -c 'import json,sys; d=json.load(sys.stdin)["device"]; print(d)' <<<"$health")"
    else
        fail "$model: the server is not on $device: $health"
    fi
    if "$bin" load --url "ws://$address/v1/listen" --streams "$streams" --file "$recordings/jfk.wav" \
        --diarize true --stagger-ms 20 --pause-s 2 --out-dir "$out/load-$tag" >"$out/load-$tag.txt" 2>&1; then
        { echo; echo "### Load sweep, $model, $workers ASR workers"; echo; cat "$out/load-$tag/load.md"; } >>"$out/sweeps.md"
        pass "$model, $workers workers: load sweep ($streams streams)"
    else
        fail "$model, $workers workers: load sweep: $(tail -c 600 "$out/load-$tag.txt")"
    fi
    curl -s "http://$address/stats/workers" >"$out/workers-$tag.json" || true
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null || true
    if grep -qi '"level":"ERROR"' "$out/serve-$tag.log"; then fail "$model: the server logged errors (serve-$tag.log)"; fi
}

for model in "${whisper_models[@]}"; do
    case "$model" in
        */*) [ -f "$model" ] || { say "skipping $model: not present"; continue; } ;;
        *) [ -f "$models_dir/whisper/ggml-$model.bin" ] || { say "skipping $model: not fetched"; continue; } ;;
    esac
    check_model "$model"
done

[ -f "$out/sweeps.md" ] && cat "$out/sweeps.md" >>"$report" && rm "$out/sweeps.md"
echo >>"$report"
echo "Finished in $(elapsed) s with $failures failure(s)." >>"$report"
say "wrote $report ($(elapsed) s, $failures failure(s))"
[ "$failures" -eq 0 ]
