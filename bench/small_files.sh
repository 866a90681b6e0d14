#!/usr/bin/env bash
# Many small files (issue 21): a copy of /usr/share (~52k entries, ~0.9 GB), cofre beside
# restic in one run: initial, no-change and incremental ingests, restore; page cache dropped before
# each step; wall, user and system CPU seconds and peak RSS, because the small-file
# regression hid in system time. Needs root (drop_caches, mount).
# Each restore is measured twice: into the work directory, where the tool before it has just
# deleted its ~47k files, and onto an ext4 made for it (a loop device; mkfs's defaults). This
# VM's root file system has no journal, and there ext4 checks every free inode it considers
# for a recent deletion (`recently_deleted`, 20-30% of a restore's samples in `perf` after an
# `rm -rf`): the first row measures that as much as the tool.
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
fresh_fs() { # an empty ext4 at $W/fs (made again each time)
    mountpoint -q "$W/fs" && umount "$W/fs"
    mkdir -p "$W/fs"; rm -f "$W/fs.img"; truncate -s 4G "$W/fs.img"
    mkfs.ext4 -q -F "$W/fs.img" && mount -o loop "$W/fs.img" "$W/fs"
}
trap 'mountpoint -q "$W/fs" && umount "$W/fs"' EXIT
run() { # NAME STEP CMD...
    local name=$1 step=$2; shift 2
    drop
    /usr/bin/time -f "%e %U %S %M" -o "$W/t" "$@" > /dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
    read -r s u k kb < "$W/t"
    printf '%-22s %-18s %6.2f s wall %6.2f s user %6.2f s sys %5d MiB\n' "$name" "$step" "$s" "$u" "$k" "$((kb / 1024))"
}
# The tools take turns at each step (restic, then each binary): this VM's speed drifts by
# tens of percent over minutes (docs/benchmarks.md, "bench/run.sh: the tools take turns").
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$W/restic RESTIC_CACHE_DIR=$W/restic-cache
export COFRE_PASSWORD=bench
tools=(restic "${bins[@]}")
each() { # STEP: runs STEP for every tool in turn
    local step=$1 i=0 name
    for t in "${tools[@]}"; do
        i=$((i + 1))
        local init ingest restore
        if [ "$t" = restic ]; then
            name=restic init=(restic init -q) ingest=(restic backup -q)
            restore=(restic restore -q latest --target)
        else
            # Each binary has its own repository and cache.
            export COFRE_REPO=$W/repo$i XDG_CACHE_HOME=$W/cache$i
            name=$(basename "$t") init=("$t" init) ingest=("$t" ingest -q)
            restore=("$t" restore latest --target)
        fi
        case $step in
        init) "${init[@]}" > /dev/null ;;
        initial | nochange | incremental) run "$name" "${step/nochange/no-change} ingest" "${ingest[@]}" "$W/corpus" ;;
        restore) run "$name" restore "${restore[@]}" "$W/restore" && rm -rf "$W/restore" ;;
        newfs) fresh_fs && run "$name" "restore, new ext4" "${restore[@]}" "$W/fs/r" ;;
        esac
    done
}
# 1% of the files changed (a line appended to every hundredth, in name order) and 500 new
# small files in a new directory: what a 4-hourly run of /etc, /srv or an application's
# files sees.
mutate() {
    find "$W/corpus" -type f | sort | awk 'NR % 100 == 0' | while IFS= read -r f; do
        echo "changed" >> "$f"
    done
    mkdir -p "$W/corpus/zz-new"
    for i in $(seq 500); do head -c $((i * 37 % 9000 + 100)) /dev/urandom > "$W/corpus/zz-new/f$i"; done
}
for step in init initial nochange; do each $step; done
mutate
for step in incremental restore newfs; do each $step; done
umount "$W/fs"
trap - EXIT
rm -rf "$W"
