#!/usr/bin/env bash
# Many small files (issue 21): a copy of /usr/share (~52k entries, ~0.9 GB), cofre beside
# restic in one run: initial ingest, no-change ingest, restore; page cache dropped before
# each step; wall, user and system CPU seconds and peak RSS, because the small-file
# regression hid in system time. Needs root (drop_caches).
# Usage: bench/small_files.sh [COFRE_BINARY...]   (default target/release/cofre; give two
#        binaries for an A/B of a change)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/var/tmp/cofre-small}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || { cargo build --release --quiet; bins=("$PWD/target/release/cofre"); }
command -v restic >/dev/null || { echo "install restic (apt-get install restic)"; exit 1; }
rm -rf "$W"; mkdir -p "$W"
rsync -a /usr/share/ "$W/corpus/"
echo "corpus: $(find "$W/corpus" | wc -l) entries, $(du -sh "$W/corpus" | cut -f1); $(nproc) cores, $(uname -r)"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
run() { # NAME STEP CMD...
    local name=$1 step=$2; shift 2
    drop
    /usr/bin/time -f "%e %U %S %M" -o "$W/t" "$@" > /dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
    read -r s u k kb < "$W/t"
    printf '%-22s %-17s %6.2f s wall %6.2f s user %6.2f s sys %5d MiB\n' "$name" "$step" "$s" "$u" "$k" "$((kb / 1024))"
}
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$W/restic RESTIC_CACHE_DIR=$W/restic-cache
restic init -q
run restic "initial ingest" restic backup -q "$W/corpus"
run restic "no-change ingest" restic backup -q "$W/corpus"
run restic "restore" restic restore -q latest --target "$W/restore"
rm -rf "$W/restore" "$W/restic" "$W/restic-cache"
for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    export COFRE_REPO=$W/repo COFRE_PASSWORD=bench XDG_CACHE_HOME=$W/cache
    "$bin" init > /dev/null
    run "$name" "initial ingest" "$bin" ingest -q "$W/corpus"
    run "$name" "no-change ingest" "$bin" ingest -q "$W/corpus"
    run "$name" "restore" "$bin" restore latest --target "$W/restore"
    rm -rf "$W/restore" "$W/repo" "$W/cache"
done
rm -rf "$W"
