#!/usr/bin/env bash
# One command to set everything up and run the whole test suite on the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh tiny.en base
# promtool checks the /metrics exposition format in the tests.
if ! command -v promtool >/dev/null; then
    echo "setup: installing prometheus (for promtool)"
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null \
        || { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
fi
# ffmpeg makes the audio-format fixtures (MP3, FLAC, Ogg, M4A, ...) from the test recordings;
# the server itself never runs it.
if ! command -v ffmpeg >/dev/null; then
    echo "setup: installing ffmpeg (for the audio-format test fixtures)"
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null \
        || { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
fi
cargo test --release
