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
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
command -v restic >/dev/null || { echo "apt-get install restic"; exit 1; }
rm -rf "$W"; mkdir -p "$W"
C="$W/tree"
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache"
export COFRE_REPO="$W/cofre-repo" RESTIC_REPOSITORY="$W/restic-repo"
export RESTIC_CACHE_DIR="$W/cache/restic"
OUT="$W/results.tsv"; : > "$OUT"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
measure() {
    local tool=$1 step=$2; shift 2
    drop
    /usr/bin/time -f "%e %U %S %M" -o "$W/time.out" "$@" > "$W/last.out" 2> "$W/last.log" \
        || { cat "$W/last.log"; echo "$tool $step failed"; exit 1; }
    read -r secs user sys kb < "$W/time.out"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$secs" "$user" "$sys" "$((kb / 1024))" \
        | tee -a "$OUT"
}

python3 - "$C" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
words = [f"w{i}" for i in range(5000)]
for d in range(100):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
for i in range(n):
    line = " ".join(rng.choice(words) for _ in range(12))
    with open(f"{root}/d{i % 100:02}/m{i:07}.txt", "w") as f:
        f.write(f"message {i}\n" + (line + "\n") * rng.randint(1, 100))
PY
"$COFRE" init > /dev/null
restic init > /dev/null
for s in $(seq 1 "$SNAPS"); do
    python3 - "$C" "$FILES" "$s" <<'PY'
import random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in rng.sample(range(n), n // 100):
    with open(f"{root}/d{i % 100:02}/m{i:07}.txt", "a") as f:
        f.write(f"edit {seed}\n")
PY
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
