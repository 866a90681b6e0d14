#!/usr/bin/env bash
# Compression choices side by side on bench/run.sh's corpus (and its mutation): initial and
# incremental ingest time, repository size, restore and `cp -a` out of the mount, page cache
# dropped before each step; restic 0.14 (zstd auto) on the same two states for reference.
# Needs root (drop_caches, FUSE). Usage: bench/compression.sh [WORKDIR] [CHOICES...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-compression}"
shift || true
CHOICES=("${@:-none lz4 zstd:1 zstd:3 zstd:6}")
read -r -a CHOICES <<<"${CHOICES[*]}"
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
rm -rf "$W"; mkdir -p "$W/state0" "$W/state1"
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench
rsync -a /usr/lib/x86_64-linux-gnu /usr/include /usr/share/doc "$W/state0/"
python3 "$ROOT/bench/gen_dump.py" "$W/state0/dump.sql" 0
rsync -a "$W/state0/" "$W/state1/"
python3 "$ROOT/bench/gen_dump.py" "$W/state1/dump.sql" 1
for f in $(find "$W/state1/include" -name '*.h' | sort | head -20); do echo "/* changed */" >> "$f"; done
head -c 20000000 /dev/urandom > "$W/state1/new.bin"
C="$W/corpus"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
t() { drop; local s; s=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc | xargs printf '%.2f'; }

printf '| compression | initial ingest s | incremental s | repository bytes | dump added by the mutation | restore s | mount `cp -a` s |\n'
printf '|---|---|---|---|---|---|---|\n'
for c in "${CHOICES[@]}"; do
    rm -rf "$C" "$W/repo" "$W/cache" "$W/r" "$W/cp"
    rsync -a "$W/state0/" "$C/"
    export COFRE_REPO="$W/repo" XDG_CACHE_HOME="$W/cache"
    "$COFRE" init --compression "$c" > /dev/null
    initial=$(t "$COFRE" ingest -q "$C")
    rsync -a --delete "$W/state1/" "$C/"
    incr=$(t "$COFRE" ingest -q "$C")
    size=$(du -sb "$W/repo" | cut -f1)
    dump_added=$("$COFRE" --json snapshots | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[-1]["bytes_added"])')
    restore=$(t "$COFRE" restore latest --target "$W/r")
    mkdir -p "$W/mnt"
    "$COFRE" mount "$W/mnt" 2>/dev/null & MP=$!
    for _ in $(seq 200); do [ -L "$W/mnt/default/latest" ] && break; sleep 0.1; done
    cp_s=$(t cp -a "$W/mnt/default/latest$C" "$W/cp")
    kill -TERM $MP; wait $MP || true
    printf '| cofre %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$initial" "$incr" "$size" "$dump_added" "$restore" "$cp_s"
done
rm -rf "$C" "$W/r" "$W/cp"
rsync -a "$W/state0/" "$C/"
export RESTIC_REPOSITORY="$W/restic" RESTIC_CACHE_DIR="$W/cache/restic"
restic init > /dev/null
initial=$(t restic backup -q "$C")
rsync -a --delete "$W/state1/" "$C/"
incr=$(t restic backup -q "$C")
size=$(du -sb "$W/restic" | cut -f1)
restore=$(t restic restore latest --target "$W/r")
printf '| restic %s | %s | %s | %s | - | %s | - |\n' "$(restic version | cut -d' ' -f2)" "$initial" "$incr" "$size" "$restore"
