#!/usr/bin/env bash
# `cofre drill` on bench/run.sh's corpus, local repository and Garage on loopback: files,
# bytes, mount/copy/verify times, throughput and the RTO it measures, page cache dropped first.
# Needs root (drop_caches, FUSE). Usage: bench/drill.sh [WORKDIR] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-drill-bench}"
C="${2:-}"
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
rm -rf "$W"; mkdir -p "$W/tmp"
if [ -z "$C" ]; then
    C="$W/corpus"; mkdir -p "$C"
    rsync -a /usr/lib/x86_64-linux-gnu /usr/include /usr/share/doc "$C/"
    python3 "$ROOT/bench/gen_dump.py" "$C/dump.sql" 0
fi
export COFRE_PASSWORD=bench TMPDIR="$W/tmp"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
row() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]
print("| %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %s |" % (sys.argv[2], r["files"], r["bytes"]/1e6,
  r["mount_seconds"], r["copy_seconds"], r["verify_seconds"], r["throughput_bytes_per_second"]/1e6, r["rto_seconds"],
  "pass" if r["passed"] else "FAIL"))' "$1" "$2"
}
echo "| repository | files | MB | mount s | copy (cp -a) s | verify s | MB/s | RTO s | result |"
echo "|---|---|---|---|---|---|---|---|---|"
export COFRE_REPO="$W/repo" XDG_CACHE_HOME="$W/cache"
"$COFRE" init > /dev/null
"$COFRE" ingest -q --set corpus "$C"
drop
"$COFRE" drill --set corpus --report "$W/local.json" > /dev/null || true
row "$W/local.json" local
export PATH="$HOME/.cargo/bin:$PATH"
if command -v garage > /dev/null; then
    integration/garage.sh start "$W/garage" > /dev/null
    trap 'integration/garage.sh stop "$W/garage"' EXIT
    # shellcheck disable=SC1091
    source "$W/garage/env"
    export COFRE_REPO="s3://$COFRE_TEST_BUCKET/cofre" XDG_CACHE_HOME="$W/cache-s3"
    "$COFRE" init > /dev/null
    "$COFRE" ingest -q --set corpus "$C"
    rm -rf "$W/cache-s3"   # a cold machine: catalog rebuilt, no blob cache
    drop
    "$COFRE" drill --set corpus --report "$W/garage.json" > /dev/null || true
    row "$W/garage.json" "Garage (cold cache)"
fi
