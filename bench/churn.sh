#!/usr/bin/env bash
# Restore and prune after churn (issue 21): a tree of FILES small files, then SNAPS
# snapshots with 1% of the files rewritten before each, so the latest snapshot's files are
# spread over the packs of every ingest, among blobs of versions it does not hold (what
# weeks of 4-hourly snapshots of /srv or a mail spool look like). cofre beside restic on
# the same history: restore of the latest snapshot (whole, and one directory of FILES/100
# files), then forget all but 2 and prune. Wall, user and system CPU, peak RSS; page cache
# dropped before every measured step; restored trees compared with `diff -r`.
# Needs root (drop_caches) and restic. Usage: bench/churn.sh [WORKDIR] (~6 GB free)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-churn}"
FILES=${FILES:-300000}
SNAPS=${SNAPS:-6}
# shellcheck source=bench/mailtree.sh
. "$ROOT/bench/mailtree.sh"
workdir

make_tree "$C" "$FILES"
"$COFRE" init > /dev/null
restic init > /dev/null
for s in $(seq 1 "$SNAPS"); do
    churn "$C" "$FILES" "$s"
    "$COFRE" ingest -q "$C"
    restic backup -q "$C"
done
for round in 1 2; do
    rm -rf "$W/out"
    measure cofre "restore-dir-$round" "$COFRE" restore "latest:$C/d42" --target "$W/out"
    diff -r "$W/out$C/d42" "$C/d42"
    rm -rf "$W/out"
    measure restic "restore-dir-$round" restic restore latest --include "$C/d42" --target "$W/out"
    diff -r "$W/out$C/d42" "$C/d42"
    rm -rf "$W/out"
    measure cofre "restore-all-$round" "$COFRE" restore latest --target "$W/out"
    diff -r "$W/out$C" "$C"
    rm -rf "$W/out"
    measure restic "restore-all-$round" restic restore latest --target "$W/out"
    diff -r "$W/out$C" "$C"
done
rm -rf "$W/out"
measure cofre forget "$COFRE" forget --keep-last 2
measure cofre prune "$COFRE" prune
measure restic forget-prune restic forget --keep-last 2 --prune
echo "results: $OUT"
