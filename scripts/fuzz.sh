#!/usr/bin/env bash
# Fuzzes every target under fuzz/ for SECONDS each (default 20: the short run of the test
# command; run e.g. `scripts/fuzz.sh 600` for the ten-minute runs). Needs the nightly toolchain;
# installs cargo-fuzz from crates.io when missing. Fails on the first crash, leaving the input
# in fuzz/artifacts/TARGET/. New inputs go to a temporary folder: the corpora in the repo
# (fuzz/corpus/TARGET) stay the small seed sets they are.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
targets=(listen_query client_text pcm_frames audio_file rttm config_file)
[ $# -ge 2 ] && targets=("${@:2}")

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# No sanitizer: the code under test is safe Rust (and the C of libopus), and an uninstrumented
# build is both quicker to make and runs several times more inputs per second.
fuzz=(cargo +nightly fuzz)
echo "fuzz: building ${#targets[@]} targets"
"${fuzz[@]}" build --sanitizer none >/dev/null 2>&1 || "${fuzz[@]}" build --sanitizer none
for target in "${targets[@]}"; do
    work=$(mktemp -d)
    log="$work/log"
    max_len=4096
    [ "$target" = audio_file ] && max_len=65536
    if "${fuzz[@]}" run --sanitizer none "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -n "$runs" ] || runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo "?")
        echo "fuzz: $target: ${runs} inputs in ${seconds} s, no crash"
        rm -rf "$work"
    else
        tail -n 60 "$log" | cut -c1-300
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
