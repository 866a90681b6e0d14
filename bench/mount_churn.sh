#!/usr/bin/env bash
# The mount after churn (issue 27, "Sparse segments" in docs/benchmarks.md): a tree of FILES
# small files in 100 directories, then SNAPS-1 more snapshots with 2% of the files changed
# (a line appended) before each, so that every later snapshot's pack holds a few files of
# every directory. Then, out of a new mount each time (page cache dropped), `cp -a` of one
# directory and of the whole tree into tmpfs, compared with `diff -r`; wall time, the mount's
# CPU and peak RSS. RESTIC=1 adds restic's mount on the same history (slow to build: one
# backup per snapshot). BIN=path measures another cofre binary on the same repository (A/B).
# Needs root (drop_caches, FUSE, tmpfs). Usage: bench/mount_churn.sh [WORKDIR] (~4 GB free)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-mount-churn}"
FILES=${FILES:-200000}
SNAPS=${SNAPS:-20}
# shellcheck source=bench/mailtree.sh
. "$ROOT/bench/mailtree.sh"
workdir
BIN=${BIN:-$COFRE}

make_tree "$C" "$FILES"
"$COFRE" init > /dev/null
[ -n "${RESTIC:-}" ] && restic init > /dev/null
for s in $(seq 1 "$SNAPS"); do
    if [ "$s" -gt 1 ]; then
        churn "$C" "$FILES" "$s"
        churn "$C" "$FILES" "$((s + 1000))"
    fi
    "$COFRE" ingest -q "$C" > /dev/null
    [ -n "${RESTIC:-}" ] && restic backup -q "$C" > /dev/null
done
note cofre repo-bytes "$(du -sb "$COFRE_REPO" | cut -f1)"

mkdir -p "$W/mnt" "$W/t"
mount -t tmpfs -o size=8G tmpfs "$W/t"
trap 'umount "$W/mnt" 2>/dev/null || true; umount "$W/t" 2>/dev/null || true' EXIT

# copy TOOL STEP FROM: a new mount, caches dropped, `cp -a FROM` into tmpfs, checked.
copy() {
    local tool=$1 step=$2 from=$3 pid ready
    rm -rf "$W/t/c"
    drop
    if [ "$tool" = restic ]; then
        restic mount "$W/mnt" > /dev/null 2>&1 & pid=$!
        ready="$W/mnt/snapshots/latest"
        from="$W/mnt/snapshots/latest$from"
    else
        "$BIN" mount "$W/mnt" 2> "$W/mount.log" & pid=$!
        ready="$W/mnt/default/latest"
        from="$W/mnt/default/latest$from"
    fi
    for _ in $(seq 600); do [ -e "$ready" ] && break; sleep 0.1; done
    local s e
    s=$(date +%s.%N)
    cp -a "$from" "$W/t/c"
    e=$(date +%s.%N)
    local cpu hwm
    cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$pid/stat")
    hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
    kill -INT "$pid"; wait "$pid" || true
    diff -r "$3" "$W/t/c" > /dev/null || { echo "$tool $step: the copy differs"; exit 1; }
    printf '%s\t%s\t%.2f s\tmount CPU %s s\tpeak RSS %s MiB\n' "$tool" "$step" \
        "$(echo "$e - $s" | bc)" "$cpu" "$hwm" | tee -a "$OUT"
}

for round in 1 2; do
    copy cofre "cp-one-dir-$round" "$C/d42"
    [ -n "${RESTIC:-}" ] && copy restic "cp-one-dir-$round" "$C/d42"
done
copy cofre cp-whole-tree "$C"
rm -rf "$W/t/c"
drop
s=$(date +%s.%N); cp -a "$C/d42" "$W/t/c"; e=$(date +%s.%N)
note native cp-one-dir "$(printf '%.2f' "$(echo "$e - $s" | bc)") s"
