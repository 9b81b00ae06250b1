#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no Rust toolchain and takes
# at most 64 MiB of files per call: the stripped CUDA binary and the models, each part under
# target/gpu-bundle/ small enough to travel alone. Carry one part per call (the parts stay on
# the machine between calls), then run scripts/gpu-check.sh, which unpacks them.
#
#   scripts/build-cuda.sh && scripts/gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${SPEECH_CUDA_BIN:-target/cuda/release/speech-service}
models=${SPEECH_MODELS_DIR:-models}
out=target/gpu-bundle
limit=$((60 * 1024 * 1024))
[ -x "$bin" ] || { echo "gpu-bundle: no CUDA binary at $bin: run scripts/build-cuda.sh" >&2; exit 1; }
# 8-bit tiny.en: the quantized model the check runs (base does not fit in one part).
[ -f "$models/whisper/ggml-tiny.en-q8_0.bin" ] || ./target/release/speech-service --models-dir "$models" models fetch --whisper tiny.en-q8_0
rm -rf "$out" && mkdir -p "$out"

strip -o "$out/speech-service" "$bin"
xz -T0 -6 "$out/speech-service"
tar -C "$models" -cJf "$out/models-whisper.tar.xz" whisper/ggml-tiny.en-q8_0.bin silero recordings speaker/segmentation-3.0.onnx
tar -C "$models" -cJf "$out/models-speaker.tar.xz" speaker/campplus_cn_en_common.pt

status=0
for part in "$out"/*; do
    size=$(stat -c %s "$part")
    echo "gpu-bundle: $part $((size / 1024 / 1024)) MiB"
    [ "$size" -le "$limit" ] || { echo "gpu-bundle: $part is over 60 MiB" >&2; status=1; }
done
echo "gpu-bundle: carry each file in its own call, then run: GPU_CHECK_MODELS=tiny.en-q8_0 scripts/gpu-check.sh"
exit "$status"
