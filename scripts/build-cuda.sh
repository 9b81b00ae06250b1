#!/usr/bin/env bash
# Builds the CUDA binary, target/cuda/release/speech-service: whisper.cpp with its CUDA backend
# and candle's CUDA device for CAM++ (`--features cuda`); ONNX Runtime's CUDA provider comes
# with the GPU build of its library at run time (docs/DEPLOY.md). Runs on a machine without a
# GPU: the CUDA 13.0 compiler, runtime, cuBLAS, cuRAND and NVRTC come from NVIDIA's wheels on
# PyPI, pinned below, unpacked under target/cuda-toolkit. The CPU build (target/release) is not
# touched.
#
#   scripts/build-cuda.sh                  (compute capabilities 8.0, 8.9 and 9.0)
#   CUDA_ARCHS="90" scripts/build-cuda.sh  (only what an H100/H200 needs: a shorter build)
set -euo pipefail
cd "$(dirname "$0")/.."

archs=${CUDA_ARCHS:-80;89;90}
toolkit_dir=$PWD/target/cuda-toolkit
# CUDA 13.0 throughout: the oldest 13.x, so the widest range of drivers (580 and later) runs it.
packages=(
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
cuda=$toolkit_dir/site/nvidia/cu13

install_toolkit() {
    [ -f "$toolkit_dir/.installed" ] && [ "$(cat "$toolkit_dir/.installed")" = "${packages[*]}" ] && return
    echo "build-cuda: installing the CUDA toolkit wheels into $toolkit_dir"
    rm -rf "$toolkit_dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$toolkit_dir/site" "${packages[@]}"
    lay_out_toolkit
    echo "${packages[*]}" >"$toolkit_dir/.installed"
}

# The wheels hold a toolkit's files but not its layout: nvcc looks for its headers under
# targets/x86_64-linux, CMake for lib64, the linker for unversioned names.
lay_out_toolkit() {
    mkdir -p "$cuda/targets/x86_64-linux" "$cuda/lib/stubs"
    ln -sfn ../../include "$cuda/targets/x86_64-linux/include"
    ln -sfn ../../lib "$cuda/targets/x86_64-linux/lib"
    ln -sfn lib "$cuda/lib64"
    local so
    for so in "$cuda"/lib/*.so.*; do
        ln -sfn "$(basename "$so")" "${so%%.so.*}.so"
    done
    driver_stub
    # whisper-rs-sys asks the linker for culibos, which only static CUDA libraries need; we link
    # the shared ones, so an empty archive answers the request.
    ar rcs "$cuda/lib/libculibos.a"
}

# libcuda.so.1 belongs to the NVIDIA driver, not the toolkit, and no wheel has the link stub the
# full toolkit ships. This one defines every driver entry point cuda.h declares, so the link
# succeeds; at run time the driver's own libcuda.so.1 (same soname) is the one loaded.
driver_stub() {
    local work
    work=$(mktemp -d)
    echo '#include <cuda.h>' | gcc -E -P -I"$cuda/include" -x c - \
        | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u \
        | sed 's/.*/int &(void) { return 999; }/' >"$work/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$work/stub.c"
    rm -rf "$work"
}

install_toolkit
export PATH=$cuda/bin:$PATH CUDA_PATH=$cuda CUDA_ROOT=$cuda
# whisper.cpp (through whisper-rs-sys, which passes GGML_* and CMAKE_* on to CMake): the
# compute capabilities asked for, and x86-64-v3 CPU code rather than this machine's own, since
# the binary runs on another machine.
export CMAKE_CUDA_COMPILER=$cuda/bin/nvcc CMAKE_CUDA_ARCHITECTURES=$archs
export GGML_NATIVE=OFF GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON
# candle's kernels are compiled to PTX for the lowest capability asked for; the driver compiles
# PTX for newer GPUs when it loads it.
lowest=$(tr ';' '\n' <<<"$archs" | sed 's/[^0-9].*//' | sort -n | head -1)
export CUDA_COMPUTE_CAP=$lowest
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$cuda/lib -L native=$cuda/lib/stubs"
echo "build-cuda: building for compute capabilities $archs (this takes a while on few cores)"
cargo build --release --features cuda --target-dir target/cuda
echo "build-cuda: target/cuda/release/speech-service (needs the NVIDIA driver and the CUDA 13 runtime," \
    "cuBLAS, cuRAND and NVRTC libraries where it runs: see docs/DEPLOY.md)"
