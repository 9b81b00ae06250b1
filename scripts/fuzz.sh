#!/usr/bin/env bash
# Fuzzes every target under fuzz/. `scripts/fuzz.sh SECONDS` runs each for SECONDS (e.g.
# `scripts/fuzz.sh 600` for the ten-minute runs). `scripts/fuzz.sh quick`, the test command's
# short run, gives each a fixed number of inputs instead (`QUICK_INPUTS` below: about what 20 s
# gives it here), so the run is as thorough when it shares the CPU with the tests
# (scripts/test.sh runs it beside them at idle priority) and simply takes longer. Targets may
# follow (default: all). Needs the nightly toolchain; installs cargo-fuzz from crates.io when
# missing. Targets run side by side, one per core; a crash fails the run once the others are
# done, leaving the input in fuzz/artifacts/TARGET/. New inputs go to a temporary folder: the
# corpora in the repo (fuzz/corpus/TARGET) stay the small seed sets they are.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-20}
targets=(listen_query client_text pcm_frames audio_file rttm config_file vendor_events)
[ $# -ge 2 ] && targets=("${@:2}")
# Inputs per target in a quick run: what each ran in 20 s, two at a time, on the 2-core EPYC of
# docs/BENCHMARKS.md ("The test command"), rounded down.
declare -A QUICK_INPUTS=(
    [listen_query]=1000000 [client_text]=750000 [pcm_frames]=3500000 [audio_file]=50000
    [rttm]=2000000 [config_file]=550000 [vendor_events]=80000
)
# One fuzzer per core: each is single-threaded.
jobs=$(nproc)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# No sanitizer: the code under test is safe Rust (and the C of libopus), and an uninstrumented
# build is both quicker to make and runs several times more inputs per second. One build makes
# every target; the runs start the binaries it made, so nothing is built twice.
# Sixteen codegen units: the build is shorter (about 35 s of 300 here), the fuzzers a little slower.
fuzz=(cargo +nightly fuzz)
build=(build --sanitizer none --codegen-units 16)
echo "fuzz: building ${#targets[@]} targets"
"${fuzz[@]}" "${build[@]}" >/dev/null 2>&1 || "${fuzz[@]}" "${build[@]}"
bin_dir="fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

# Runs one target; its report (or the tail of its log on a crash) goes to $2.
fuzz_one() {
    local target=$1 report=$2 work max_len=4096 budget started=$SECONDS
    work=$(mktemp -d)
    [ "$target" = audio_file ] && max_len=65536
    if [ "$limit" = quick ]; then budget=-runs=${QUICK_INPUTS[$target]}; else budget=-max_total_time=$limit; fi
    mkdir -p "fuzz/artifacts/$target"
    if "$bin_dir/$target" -artifact_prefix="fuzz/artifacts/$target/" "$budget" \
        -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 "$work" "fuzz/corpus/$target" >"$work/log" 2>&1; then
        local runs
        runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/log" | grep -o '[0-9]*$' || true)
        [ -n "$runs" ] || runs=$(grep -o 'Done [0-9]* runs' "$work/log" | grep -o '[0-9]*' || echo "?")
        echo "fuzz: $target: ${runs} inputs in $((SECONDS - started)) s, no crash" >"$report"
        rm -rf "$work"
    else
        { tail -n 60 "$work/log" | cut -c1-300; echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"; } >"$report"
        return 1
    fi
}

reports=$(mktemp -d)
failed=0
running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    fuzz_one "$target" "$reports/$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
for target in "${targets[@]}"; do cat "$reports/$target"; done
rm -rf "$reports"
[ "$failed" -eq 0 ] || { echo "fuzz: a target crashed (above)" >&2; exit 1; }
