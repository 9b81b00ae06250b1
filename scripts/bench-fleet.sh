#!/usr/bin/env bash
# The fleet's load on one PostgreSQL (docs/BENCHMARKS.md, "Fleet at scale"): starts a
# throw-away PostgreSQL (Debian's, as scripts/test.sh installs it), runs the fleet benchmark
# against it (simulated replicas through the store's own code), and removes it.
#
#   scripts/bench-fleet.sh [fleet_bench options, e.g. --replicas 8 --sessions 100]
#
# FLEET_BENCH=path/to/fleet_bench measures another build's store (e.g. one made from an older
# commit) instead of this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${FLEET_BENCH:-target/release/fleet_bench}
[ -n "${FLEET_BENCH:-}" ] || cargo build --release --bin fleet_bench 2>/dev/null
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -o "-p $port -c listen_addresses=127.0.0.1 -k $dir" -w start >/dev/null
trap '"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null; rm -rf "$dir"' EXIT
"$bench" --url "postgres://postgres@127.0.0.1:$port/postgres" "$@"
