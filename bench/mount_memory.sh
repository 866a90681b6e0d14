#!/usr/bin/env bash
# Mount memory under `find` over many snapshots (issue 8, item 10): N snapshots of a tree of
# F files, `find` over the whole mount, the mount's RSS after it, and after the kernel drops
# its caches (FUSE forget). Usage: bench/mount_memory.sh [SNAPSHOTS] [FILES]  (as root)
set -euo pipefail
snaps=${1:-200}
files=${2:-10000}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/cofre
work=$(mktemp -d /var/tmp/cofre-mem.XXXXXX)
trap 'fusermount3 -u "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
export COFRE_REPO=$work/repo COFRE_PASSWORD=bench XDG_CACHE_HOME=$work/cache
mkdir -p "$work/src" "$work/mnt"
for ((d = 0; d < files / 100; d++)); do
    mkdir -p "$work/src/d$d"
    for ((f = 0; f < 100; f++)); do echo "$d/$f" > "$work/src/d$d/f$f"; done
done
$bin init -q >/dev/null 2>&1 || $bin init >/dev/null
start=$(date +%s)
for ((i = 0; i < snaps; i++)); do
    $bin ingest -q --time "$(date -u -d "2026-01-01 + $((i * 4)) hours" +%Y-%m-%dT%H:%M:%SZ)" "$work/src" >/dev/null
done
echo "ingest of $snaps snapshots: $(( $(date +%s) - start )) s"
# --xattrs: the inode count is a hidden xattr, which a mount without xattrs does not answer.
$bin mount --xattrs "$work/mnt" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -d "$work/mnt/default" ] && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
echo "mount RSS before find: $(rss) MiB"
start=$(date +%s)
entries=$(find "$work/mnt" | wc -l)
echo "find: $entries entries in $(( $(date +%s) - start )) s; RSS $(rss) MiB, inodes $(getfattr --only-values -n user.cofre.inodes "$work/mnt")"
echo 2 > /proc/sys/vm/drop_caches
sleep 4
echo "after the kernel dropped its caches: RSS $(rss) MiB, inodes $(getfattr --only-values -n user.cofre.inodes "$work/mnt")"
