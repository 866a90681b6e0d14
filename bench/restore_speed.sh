#!/usr/bin/env bash
# Restore speed and memory (issue 13), cofre beside restic on the same data in one run:
# native `cp -a`/`find`, `cp -a`/`find` out of each tool's mount, each tool's restore, on
# bench/run.sh's corpus ("main") and on a Linux source tree ("linux": many small files).
# Page cache dropped before each step; restores' peak RSS from /usr/bin/time, the mount's
# RSS sampled during its `cp -a`. Needs root (drop_caches, FUSE), restic, linux-source.
# Usage: bench/restore_speed.sh [WORKDIR]   (default /var/tmp/cofre-restore; ~12 GB free)
# MAIN=dir uses an existing copy of the main corpus instead of building one; CORPORA="main"
# (default "main linux") limits the local part; with Garage installed (`cargo install garage`)
# the main corpus is also read back over S3 (Garage on loopback): restore, mount cold and warm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-restore}"
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
command -v restic >/dev/null || { echo "apt-get install restic"; exit 1; }
LSRC=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | head -1)
[ -n "$LSRC" ] || { echo "apt-get install linux-source"; exit 1; }
rm -rf "$W"; mkdir -p "$W"
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache"
export RESTIC_CACHE_DIR="$W/cache/restic"

if [ -n "${MAIN:-}" ]; then ln -s "$MAIN" "$W/main"; else
    mkdir -p "$W/main"
    rsync -a /usr/lib/x86_64-linux-gnu /usr/include /usr/share/doc "$W/main/"
    python3 "$ROOT/bench/gen_dump.py" "$W/main/dump.sql" 0
fi
CORPORA=${CORPORA-main linux}
case " $CORPORA " in *" linux "*) mkdir -p "$W/linux"; tar -xJf "$LSRC" -C "$W/linux" ;; esac

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
OUT="$W/results.tsv"; : > "$OUT"
# step CORPUS WHAT CMD...: wall seconds and peak RSS (MiB) of CMD, page cache dropped first.
step() {
    local corpus=$1 what=$2; shift 2
    drop
    /usr/bin/time -f "%e %M" -o "$W/time.out" "$@" > /dev/null 2> "$W/last.log" \
        || { cat "$W/last.log"; echo "$corpus $what failed"; exit 1; }
    read -r secs kb < "$W/time.out"
    printf '%s\t%s\t%s\t%s\n' "$corpus" "$what" "$secs" "$((kb / 1024))" | tee -a "$OUT"
}
# mounted_cp CORPUS WHAT PID DIR: `cp -a DIR` with the mount's RSS sampled every 50 ms.
mounted_cp() {
    local corpus=$1 what=$2 pid=$3 dir=$4 max=0 r
    rm -f "$W/stop"
    ( while [ ! -e "$W/stop" ]; do
        r=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "$r" -gt "$max" ] && max=$r && echo "$max" > "$W/rss.max"
        sleep 0.05
    done ) &
    local sampler=$!
    drop
    local t0; t0=$(date +%s.%N)
    timeout 600 cp -a "$dir" "$W/cp"
    local secs; secs=$(echo "$(date +%s.%N) - $t0" | bc)
    touch "$W/stop"; wait $sampler
    printf '%s\t%s\t%.2f\t%s\n' "$corpus" "$what" "$secs" "$(cat "$W/rss.max")" | tee -a "$OUT"
    rm -rf "$W/cp"
}
wait_path() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

for corpus in $CORPORA; do
    C=$(readlink -f "$W/$corpus")
    printf '%s\tsize\t%s\t%s\n' "$corpus" "$(du -sb "$C/" | cut -f1)" "$(find "$C/" | wc -l)" | tee -a "$OUT"
    export COFRE_REPO="$W/repo-$corpus" RESTIC_REPOSITORY="$W/restic-$corpus"
    "$COFRE" init > /dev/null
    "$COFRE" ingest -q "$C" > /dev/null
    restic init > /dev/null
    restic backup -q "$C" > /dev/null

    step "$corpus" native-cp cp -a "$C" "$W/cp"; rm -rf "$W/cp"
    step "$corpus" native-find find "$C/" -printf ''
    step "$corpus" cofre-restore "$COFRE" restore latest --target "$W/r"; rm -rf "$W/r"
    step "$corpus" restic-restore restic restore -q latest --target "$W/r"; rm -rf "$W/r"

    mkdir -p "$W/mnt"
    "$COFRE" mount "$W/mnt" > /dev/null 2>&1 < /dev/null & CPID=$!
    wait_path "$W/mnt/default/latest"
    V="$W/mnt/default/latest$C"
    step "$corpus" cofre-mount-find find "$V/" -printf ''
    mounted_cp "$corpus" cofre-mount-cp $CPID "$V"
    kill -TERM $CPID; wait $CPID || true

    restic mount "$W/mnt" > /dev/null 2>&1 < /dev/null & RPID=$!
    wait_path "$W/mnt/snapshots/latest"
    RV="$W/mnt/snapshots/latest$C"
    step "$corpus" restic-mount-find find "$RV/" -printf ''
    mounted_cp "$corpus" restic-mount-cp $RPID "$RV"
    kill -INT $RPID; wait $RPID || true
done
# ---- S3: the main corpus over Garage on loopback, cofre and restic against one server.
export PATH="$HOME/.cargo/bin:$PATH"
if command -v garage > /dev/null; then
    C=$(readlink -f "$W/main")
    integration/garage.sh start "$W/garage" > /dev/null
    trap 'integration/garage.sh stop "$W/garage"' EXIT
    # shellcheck disable=SC1091
    source "$W/garage/env"
    export COFRE_REPO="s3://$COFRE_TEST_BUCKET/cofre" XDG_CACHE_HOME="$W/cache-s3"
    "$COFRE" init > /dev/null
    "$COFRE" ingest -q "$C" > /dev/null
    step s3 cofre-restore "$COFRE" restore latest --target "$W/r"; rm -rf "$W/r"
    mkdir -p "$W/mnt"
    "$COFRE" mount "$W/mnt" > /dev/null 2>&1 < /dev/null & CPID=$!
    wait_path "$W/mnt/default/latest"
    mounted_cp s3 cofre-mount-cp-cold $CPID "$W/mnt/default/latest$C"
    kill -TERM $CPID; wait $CPID || true
    # Warm: a new mount process (empty memory cache), the data in the on-disk cache.
    "$COFRE" mount "$W/mnt" > /dev/null 2>&1 < /dev/null & CPID=$!
    wait_path "$W/mnt/default/latest"
    mounted_cp s3 cofre-mount-cp-warm $CPID "$W/mnt/default/latest$C"
    kill -TERM $CPID; wait $CPID || true
    export RESTIC_REPOSITORY="s3:$AWS_ENDPOINT_URL/$COFRE_TEST_BUCKET/restic" AWS_DEFAULT_REGION=garage
    restic init > /dev/null
    restic backup -q "$C" > /dev/null
    step s3 restic-restore restic restore -q latest --target "$W/r"; rm -rf "$W/r"
fi
echo "results in $OUT"
