#!/usr/bin/env bash
# A/B of two cofre binaries on one corpus (what a change costs or buys): initial ingest,
# no-change ingest, restore, page cache dropped before each step. Needs root (drop_caches).
# Usage: bench/ab.sh OLD_BINARY NEW_BINARY [WORKDIR]
set -euo pipefail
old=$1 new=$2 W=${3:-/var/tmp/cofre-ab}
rm -rf "$W"; mkdir -p "$W/corpus"
rsync -a /usr/lib/x86_64-linux-gnu /usr/include "$W/corpus/"
echo "corpus: $(find "$W/corpus" | wc -l) entries, $(du -sh "$W/corpus" | cut -f1)"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
run() { # NAME STEP CMD... : wall seconds and peak RSS
    local name=$1 step=$2; shift 2
    drop
    /usr/bin/time -f "%e %M" -o "$W/t" "$@" > /dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
    read -r s kb < "$W/t"
    printf '%-4s %-18s %6.2f s %5d MiB\n' "$name" "$step" "$s" "$((kb / 1024))"
}
for side in old new; do
    bin=${!side}
    export COFRE_REPO=$W/repo-$side COFRE_PASSWORD=ab XDG_CACHE_HOME=$W/cache-$side
    $bin init > /dev/null
    run $side "initial ingest" $bin ingest -q "$W/corpus"
    run $side "no-change ingest" $bin ingest -q "$W/corpus"
    run $side "restore" $bin restore latest --target "$W/restore-$side"
    rm -rf "$W/restore-$side"
done
rm -rf "$W"
