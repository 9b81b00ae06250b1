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
# The official `openai` Python package, pinned, drives the file API in the tests.
if [ ! -x target/test-venv/bin/python ]; then
    python3 -m venv target/test-venv 2>/dev/null || {
        echo "setup: installing python3-venv"
        if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
            || { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
        rm -rf target/test-venv
        python3 -m venv target/test-venv
    }
fi
target/test-venv/bin/python -c 'import openai; assert openai.__version__ == "2.8.1"' 2>/dev/null \
    || target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check openai==2.8.1
cargo test --release
