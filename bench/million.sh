#!/usr/bin/env bash
# A million files (issue 21, "Scale"): a tree of FILES small files (100 directories of
# FILES/100, like a mail spool), then SNAPS snapshots of it with 1% of the files rewritten
# before each. cofre beside restic on the same tree: wall, user and system CPU, peak RSS
# for each step; the catalog's size; mount start, `find` over the whole snapshot and `cp -a`
# of one directory (FILES/100 files) out of each tool's mount, and the mount's RSS after
# the `find`; `snapshots`, `ls`, prune and `catalog rebuild`.
# Page cache dropped before every measured step; the SNAPS-2 incrementals in between run
# warm and are summarised (min/median/max), with restic taking only the first one (its 49
# would take most of an hour on this VM).
# Needs root (drop_caches, FUSE) and restic. Usage: bench/million.sh [WORKDIR] (~12 GB free)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-million}"
FILES=${FILES:-1000000}
SNAPS=${SNAPS:-50}
# shellcheck source=bench/mailtree.sh
. "$ROOT/bench/mailtree.sh"
workdir

# The tree: text-like files of 100 B to 8 KB, each different.
make_tree "$C" "$FILES"
note tree entries "$(find "$C" | wc -l)"
note tree bytes "$(du -sb "$C" | cut -f1)"

"$COFRE" init > /dev/null
restic init > /dev/null
measure cofre initial "$COFRE" ingest -q "$C"
measure restic initial restic backup -q "$C"
churn "$C" "$FILES" 2
measure cofre incremental "$COFRE" ingest -q "$C"
measure restic incremental restic backup -q "$C"
measure cofre nochange "$COFRE" ingest -q "$C"
measure restic nochange restic backup -q "$C"
# The rest of the series, warm, cofre only.
: > "$W/series"
for i in $(seq 3 $((SNAPS - 1))); do
    churn "$C" "$FILES" "$i"
    /usr/bin/time -f "%e %M" -a -o "$W/series" "$COFRE" ingest -q "$C" > /dev/null
done
python3 - "$W/series" "$OUT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
secs = sorted(float(r[0]) for r in rows)
rss = max(int(r[1]) for r in rows) // 1024
line = (f"cofre\tseries of {len(rows)} warm incrementals\tmin {secs[0]:.2f} "
        f"median {statistics.median(secs):.2f} max {secs[-1]:.2f} s\tpeak RSS {rss} MiB\n")
print(line, end="")
open(sys.argv[2], "a").write(line)
PY
note cofre snapshots "$("$COFRE" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
note cofre catalog-bytes "$(du -sb "$XDG_CACHE_HOME/cofre" | cut -f1)"
note cofre repo-bytes "$(du -sb "$COFRE_REPO" | cut -f1)"
note restic repo-bytes "$(du -sb "$RESTIC_REPOSITORY" | cut -f1)"
measure cofre snapshots "$COFRE" snapshots
measure restic snapshots restic snapshots
measure cofre ls-10k-dir "$COFRE" ls "latest:$C/d42"
measure restic ls-10k-dir restic ls latest "$C/d42"

# mount: time to the first listing, `find` of the whole latest snapshot, RSS after it, and
# `cp -a` of one directory.
mkdir -p "$W/mnt"
drop
t0=$(date +%s.%N)
"$COFRE" mount "$W/mnt" 2> "$W/mount.log" & MPID=$!
for _ in $(seq 600); do [ -L "$W/mnt/default/latest" ] && break; sleep 0.1; done
note cofre mount-start "$(echo "$(date +%s.%N) - $t0" | bc) s"
measure cofre mount-find find "$W/mnt/default/latest$C" -printf ''
note cofre mount-rss-after-find "$(awk '/VmRSS/ {print int($2 / 1024) " MiB"}' /proc/$MPID/status)"
note cofre mount-find-entries "$(find "$W/mnt/default/latest$C" | wc -l)"
measure cofre mount-cp-10k-dir cp -a "$W/mnt/default/latest$C/d42" "$W/cp"
rm -rf "$W/cp"
kill -TERM $MPID; wait $MPID || true
mkdir -p "$W/rmnt"
drop
t0=$(date +%s.%N)
restic mount "$W/rmnt" > /dev/null 2>&1 & RPID=$!
for _ in $(seq 600); do [ -d "$W/rmnt/snapshots/latest" ] && break; sleep 0.1; done
note restic mount-start "$(echo "$(date +%s.%N) - $t0" | bc) s"
# Capped at 10 minutes each (a capped step shows as ~600 s).
measure restic mount-find bash -c "timeout 600 find '$W/rmnt/snapshots/latest$C' -printf '' || true"
note restic mount-rss-after-find "$(awk '/VmRSS/ {print int($2 / 1024) " MiB"}' /proc/$RPID/status)"
note restic mount-find-entries "$(timeout 600 find "$W/rmnt/snapshots/latest$C" | wc -l)"
measure restic mount-cp-10k-dir bash -c "timeout 600 cp -a '$W/rmnt/snapshots/latest$C/d42' '$W/cp' || true"
rm -rf "$W/cp"
kill -INT $RPID; wait $RPID || true

# Retention: half the snapshots go; prune frees what only they used.
measure cofre forget-half "$COFRE" forget --keep-last $((SNAPS / 2))
measure cofre prune "$COFRE" prune
measure restic forget-prune restic forget --keep-last 1 --prune
rm -rf "$XDG_CACHE_HOME/cofre"
measure cofre catalog-rebuild "$COFRE" catalog rebuild
note cofre catalog-bytes-after-rebuild "$(du -sb "$XDG_CACHE_HOME/cofre" | cut -f1)"
echo "results: $OUT"
