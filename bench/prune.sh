#!/usr/bin/env bash
# forget + prune benchmark, cofre beside restic on the same history in one run:
# 270 snapshots (45 days x 6) of a 200 MB tree (2000 files of 100 KB) with 1% of the files
# rewritten before each snapshot, then `forget --keep-within 30d --keep-weekly 52 --prune`.
# Local directory and Garage on loopback. Reports duration, peak RSS, bytes before/after.
# Usage: bench/prune.sh [WORKDIR] [SNAPSHOTS]   (default /var/tmp/cofre-prune, 270)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-prune}"
N="${2:-270}"
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
rm -rf "$W"; mkdir -p "$W"
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache" TZ=UTC
export RESTIC_CACHE_DIR="$W/cache/restic"
RESULTS="$W/results.tsv"; : > "$RESULTS"

integration/garage.sh start "$W/garage" > /dev/null
trap 'integration/garage.sh stop "$W/garage"' EXIT
# shellcheck disable=SC1091
source "$W/garage/env"
export AWS_DEFAULT_REGION=$AWS_REGION

C="$W/tree"; mkdir -p "$C"
python3 - "$C" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(2000):
    with open(os.path.join(d, f"f{i:04}"), "wb") as f:
        f.write(os.urandom(100_000))
PY

# The two repositories of each tool; restic reaches Garage through its s3 backend.
CL="$W/cofre-local"; CG="s3://$COFRE_TEST_BUCKET/cofre"
RL="$W/restic-local"; RG="s3:$AWS_ENDPOINT_URL/$COFRE_TEST_BUCKET/restic"
for r in "$CL" "$CG"; do COFRE_REPO=$r "$COFRE" init > /dev/null; done
for r in "$RL" "$RG"; do restic -r "$r" init > /dev/null; done

echo "ingesting $N snapshots into 4 repositories (this takes a while)"
start=$(date -u -d '2026-01-01 00:00' +%s)
for i in $(seq 0 $((N - 1))); do
    # 1% churn: 20 files rewritten
    python3 - "$C" "$i" <<'PY'
import os, sys
d, i = sys.argv[1], int(sys.argv[2])
if i:
    for k in range(20):
        with open(os.path.join(d, f"f{(i * 20 + k) % 2000:04}"), "wb") as f:
            f.write(os.urandom(100_000))
PY
    t=$((start + i * 4 * 3600))
    iso=$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ); plain=$(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S')
    for r in "$CL" "$CG"; do COFRE_REPO=$r "$COFRE" ingest -q --time "$iso" "$C" > /dev/null; done
    for r in "$RL" "$RG"; do restic -r "$r" backup -q --time "$plain" "$C" > /dev/null; done
    [ $((i % 30)) -eq 0 ] && echo "  $i/$N"
done

bytes() { # repository size: du for a directory, a listing for Garage
    case "$1" in
        s3:*|s3://*) python3 - "$1" <<'PY'
import os, sys, subprocess, json
url = sys.argv[1]
prefix = url.rstrip("/").split("/")[-1]
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
total = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=os.environ["COFRE_TEST_BUCKET"], Prefix=prefix + "/"):
    total += sum(o["Size"] for o in page.get("Contents", []))
print(total)
PY
        ;;
        *) du -sb "$1" | cut -f1 ;;
    esac
}
measure() { # name repo cmd...
    local name=$1 repo=$2; shift 2
    local before; before=$(bytes "$repo")
    /usr/bin/time -f "%e %M" -o "$W/time.out" "$@" > "$W/$name.log" 2>&1 || { cat "$W/$name.log"; exit 1; }
    read -r secs kb < "$W/time.out"
    local after; after=$(bytes "$repo")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$secs" "$((kb / 1024))" "$before" "$after" | tee -a "$RESULTS"
}
POLICY=(--keep-within 30d --keep-weekly 52)
measure cofre-local "$CL" env COFRE_REPO="$CL" "$COFRE" forget "${POLICY[@]}" --prune
measure restic-local "$RL" restic -r "$RL" forget "${POLICY[@]}" --prune
measure cofre-garage "$CG" env COFRE_REPO="$CG" "$COFRE" forget "${POLICY[@]}" --prune
measure restic-garage "$RG" restic -r "$RG" forget "${POLICY[@]}" --prune

# What the kept snapshots need: cofre's used bytes (prune's plan), restic's raw data.
COFRE_REPO="$CL" "$COFRE" prune --dry-run --json > "$W/after.json"
python3 - "$W/after.json" <<'PY' | tee -a "$RESULTS"
import json, sys
p = json.load(open(sys.argv[1]))["plan"]
print(f"cofre-kept\tsnapshots={p['snapshots']}\tused={p['bytes_used']}\ttotal={p['bytes_total']}")
PY
restic -r "$RL" stats --mode raw-data --json > "$W/restic-stats.json"
python3 - "$W/restic-stats.json" <<'PY' | tee -a "$RESULTS"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"restic-kept\tsnapshots={s.get('snapshots_count')}\tused={s['total_size']}")
PY
echo "results in $RESULTS (name, seconds, peak RSS MiB, bytes before, bytes after)"
