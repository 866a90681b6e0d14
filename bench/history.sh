#!/usr/bin/env bash
# History queries (issue 23): `cofre log`, `find` and `diff` from the catalog, beside
# `restic find` and `restic diff` on the same history. A tree of FILES small files
# (bench/mailtree.sh), then SNAPS snapshots with 1% of the files rewritten before each.
# Measured warm (the catalog and restic's cache are what these queries read; both tools'
# own caches as after a day of use) and with the page cache dropped: wall, user and system
# CPU, peak RSS. The issue's targets (500 snapshots of 100k files): log < 200 ms,
# find < 1 s, diff < 1 s.
# Needs root (drop_caches) and restic. Usage: FILES=100000 SNAPS=500 bench/history.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-history}"
FILES=${FILES:-100000}
SNAPS=${SNAPS:-500}
# shellcheck source=bench/mailtree.sh
. "$ROOT/bench/mailtree.sh"
workdir

make_tree "$C" "$FILES"
"$COFRE" init > /dev/null
restic init > /dev/null
start=$(date +%s)
for s in $(seq 1 "$SNAPS"); do
    churn "$C" "$FILES" "$s"
    # 4-hourly, as the users' schedule.
    t=$(date -u -d "2026-01-01 00:00 UTC +$((4 * s)) hours" '+%Y-%m-%d %H:%M:%S')
    "$COFRE" ingest -q --time "${t/ /T}Z" "$C" > /dev/null
    restic backup -q --time "$t" "$C" > /dev/null
done
note setup seconds $(( $(date +%s) - start ))
note cofre catalog-bytes "$(du -cb "$W"/cache/cofre/*/catalog.db* | tail -1 | cut -f1)"

# A file edited by one churn round in three: churn's seeds pick it in some snapshots.
F="$C/d42/m0004242.txt"
first_last='import json,sys; s=json.load(sys.stdin); print(s[0]["id"][:8], s[-1]["id"][:8])'
read -r A B < <("$COFRE" snapshots --json | python3 -c "$first_last")
read -r RA RB < <(restic snapshots --json | python3 -c "$first_last")
for mode in warm cold; do
    m() { if [ $mode = cold ]; then measure "$@"; else
        local tool=$1 step=$2; shift 2
        /usr/bin/time -f "%e %U %S %M" -o "$W/time.out" "$@" > "$W/last.out" 2> "$W/last.log" \
            || { cat "$W/last.log"; echo "$tool $step failed"; exit 1; }
        read -r secs user sys kb < "$W/time.out"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$secs" "$user" "$sys" "$((kb / 1024))" | tee -a "$OUT"
    fi; }
    "$COFRE" log "$F" > /dev/null; restic find "$F" > /dev/null  # warm-up
    m cofre "log-$mode" "$COFRE" log "$F"
    m restic "find-path-$mode" restic find "$F"
    m cofre "find-$mode" "$COFRE" find 'm000424*.txt'
    m restic "find-$mode" restic find 'm000424*.txt'
    m cofre "diff-$mode" "$COFRE" diff "$A" "$B"
    m restic "diff-$mode" restic diff "$RA" "$RB"
done
# The answers agree: the files that changed, as each tool counts them.
"$COFRE" diff "$A" "$B" | grep -c '^M ' | xargs -I{} printf 'cofre\tdiff-modified\t{}\n' | tee -a "$OUT"
restic diff "$RA" "$RB" | grep -c '^M ' | xargs -I{} printf 'restic\tdiff-modified\t{}\n' | tee -a "$OUT"
echo "results in $OUT"
