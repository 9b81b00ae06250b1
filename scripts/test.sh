#!/usr/bin/env bash
# One command to set everything up and run the whole test suite on the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh tiny.en base

# Installs a Debian package (refreshing the package lists only if the first try fails).
apt_install() {
    echo "setup: installing $1 ($2)"
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null \
        || { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }
}

# promtool checks the /metrics exposition format in the tests.
command -v promtool >/dev/null || apt_install prometheus "for promtool"
# ffmpeg makes the audio-format fixtures (MP3, FLAC, Ogg, M4A, ...) from the test recordings;
# the server itself never runs it.
command -v ffmpeg >/dev/null || apt_install ffmpeg "for the audio-format test fixtures"
# Replicas sharing a store are tested against Debian's PostgreSQL, started by the tests
# themselves in a temporary directory.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql "for the shared-store tests"
# The page is tested in Debian's Chromium, driven by playwright-core (pinned in
# tests/browser/package-lock.json).
[ -x /usr/bin/chromium ] || apt_install chromium "for the browser tests"
[ -d tests/browser/node_modules/playwright-core ] \
    || npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# Deepgram's official JavaScript SDK, pinned in tests/clients/package-lock.json, runs under node.
[ -d tests/clients/node_modules/@deepgram/sdk ] \
    || npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error
# The official `openai` Python package (with websockets, its realtime extra) and Deepgram's
# official `deepgram-sdk`, pinned, drive the file API and the vendors' live protocols in the tests.
if [ ! -x target/test-venv/bin/python ]; then
    python3 -m venv target/test-venv 2>/dev/null || {
        apt_install python3-venv "for the openai client"
        rm -rf target/test-venv
        python3 -m venv target/test-venv
    }
fi
# Beside it, pinned: kubernetes-validate (the manifests against the Kubernetes schemas) and
# PyYAML (compose.yaml) and schemathesis (the REST API against its OpenAPI document).
python_packages=(openai==2.8.1 websockets==15.0.1 deepgram-sdk==7.17.0 kubernetes-validate==1.37.0 PyYAML==6.0.2
    schemathesis==4.32.5)
installed=$(target/test-venv/bin/python -m pip freeze 2>/dev/null || true)
for package in "${python_packages[@]}"; do
    if ! grep -qixF "$package" <<<"$installed"; then
        target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check "${python_packages[@]}"
        break
    fi
done
# The fuzz targets are built and fuzzed beside the tests, at idle priority (SCHED_IDLE): they get
# only the CPU the tests leave, and most of the integration tests stream at real-time pace and
# leave much of it (docs/BENCHMARKS.md, "The test command"). The short run gives every target a
# fixed number of inputs (`scripts/fuzz.sh quick`), so sharing the CPU makes it slower, never
# thinner; its report follows the tests'.
# Where a sandbox refuses the idle policy, the lowest priority of all (nice 19) is the next best.
idle=(chrt --idle 0)
"${idle[@]}" true 2>/dev/null || idle=(nice -n 19)
fuzz_log=$(mktemp)
setsid --wait "${idle[@]}" scripts/fuzz.sh quick >"$fuzz_log" 2>&1 &
fuzz_pid=$!
# A failing test ends the command at once: the fuzzers with it.
trap 'kill -- -"$fuzz_pid" 2>/dev/null || true' EXIT
# The integration tests write their fixtures and servers' data under target/tmp
# (tests/server/common.rs, `scratch`); what earlier runs left there goes first.
rm -rf target/tmp/speech-tests-*
cargo test --release
echo "tests passed; waiting for the fuzzers"
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
trap - EXIT
cat "$fuzz_log"
rm -f "$fuzz_log"
exit "$fuzz_status"
