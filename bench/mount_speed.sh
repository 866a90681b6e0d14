#!/usr/bin/env bash
# The mount against a native copy (issue 27): `find` and `cp -a` of one snapshot of a
# small-file tree (default /usr/share, ~54k entries), copied into tmpfs so that the target
# disk's writeback does not hide the mount. Cold = page cache dropped and a new mount
# process; warm = the same copy again, nothing dropped (the mount keeps running). Each step
# reports wall, user and system seconds of the reader, and the CPU seconds the mount
# process spent in it. Extra mount flags come from MOUNT_FLAGS. With S3=1 the repository is
# on Garage on loopback; a cold step then also starts with an empty on-disk blob cache.
# With FILE_CACHE=MIB the mount keeps a file cache of that size (`--file-cache`): each round
# starts with it empty, and ends with a third copy, cold again (page cache dropped, new
# mount) but with the file cache filled by the first two: the kernel reads through
# passthrough.
# "cold, same mount" is a third copy on the mount of the first two, page cache dropped:
# what a mount that stays up meets when someone restores again later.
# Usage: bench/mount_speed.sh [SOURCE] [WORKDIR]   (needs root: drop_caches, tmpfs, FUSE)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-/usr/share}
W=${2:-/var/tmp/cofre-bench-mount}
COFRE=$PWD/target/release/cofre
ROUNDS=${ROUNDS:-2}
MOUNT_FLAGS=${MOUNT_FLAGS:-}

S3=${S3:-}
FILE_CACHE=${FILE_CACHE:-}
[ -n "$FILE_CACHE" ] && MOUNT_FLAGS="$MOUNT_FLAGS --file-cache $FILE_CACHE"

cleanup() {
  fusermount3 -u -z "$W/mnt" 2>/dev/null || true
  umount "$W/tmpfs" 2>/dev/null || true
  [ -n "$S3" ] && integration/garage.sh stop "$W/garage" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
rm -rf "$W"; mkdir -p "$W/mnt" "$W/tmpfs"
mount -t tmpfs -o size=6g tmpfs "$W/tmpfs"
export COFRE_PASSWORD=bench COFRE_REPO="$W/repo" XDG_CACHE_HOME="$W/cache"
if [ -n "$S3" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  integration/garage.sh start "$W/garage" >/dev/null
  # shellcheck disable=SC1091
  source "$W/garage/env"
  export COFRE_REPO="s3://$COFRE_TEST_BUCKET/cofre"
fi
"$COFRE" init >/dev/null
"$COFRE" ingest -q "$SRC"
echo "source $SRC: $(du -sh "$SRC" | cut -f1), $(find "$SRC" | wc -l) entries; $(uname -r); $(nproc) cores"

# Cold: nothing in the page cache, nor in the mount's on-disk blob cache (S3 only).
drop() { rm -rf "$W"/cache/cofre/*/blobs; sync; echo 3 > /proc/sys/vm/drop_caches; }
# CPU seconds (user+system) of process $1 so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
# step NAME MOUNTPID CMD...: wall, user, sys of CMD, and the mount's CPU during it.
step() {
  local name=$1 pid=$2; shift 2
  local before=0
  [ "$pid" != - ] && before=$(cpu "$pid")
  /usr/bin/time -f "%e %U %S" -o "$W/t" "$@" >/dev/null
  read -r wall user sys < "$W/t"
  local m=-
  [ "$pid" != - ] && m=$(echo "$(cpu "$pid") - $before" | bc)
  printf '%-28s wall %6.2f s  user %5.2f  sys %5.2f  mount CPU %s\n' "$name" "$wall" "$user" "$sys" "$m"
}
start_mount() {
  # shellcheck disable=SC2086
  "$COFRE" mount "$W/mnt" $MOUNT_FLAGS 2>"$W/mount.log" &
  MPID=$!
  for _ in $(seq 300); do [ -L "$W/mnt/default/latest" ] && return; sleep 0.1; done
  echo "mount did not come up"; cat "$W/mount.log"; exit 1
}
stop_mount() { kill "$MPID"; wait "$MPID" 2>/dev/null || true; }

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  rm -rf "$W/tmpfs/"* "$W"/cache/cofre/*/files; drop
  step "native find cold" - find "$SRC" -printf ''
  step "native find warm" - find "$SRC" -printf ''
  drop
  step "native cp -a cold" - cp -a "$SRC" "$W/tmpfs/native"
  rm -rf "$W/tmpfs/native"
  step "native cp -a warm" - cp -a "$SRC" "$W/tmpfs/native"
  rm -rf "$W/tmpfs/native"

  drop; start_mount
  V="$W/mnt/default/latest$SRC"
  step "mount find cold" "$MPID" find "$V" -printf ''
  step "mount find warm" "$MPID" find "$V" -printf ''
  stop_mount
  drop; start_mount
  step "mount cp -a cold" "$MPID" cp -a "$V" "$W/tmpfs/mount"
  rm -rf "$W/tmpfs/mount"
  step "mount cp -a warm" "$MPID" cp -a "$V" "$W/tmpfs/mount"
  rm -rf "$W/tmpfs/mount"
  # The same mount, later: the page cache dropped, the mount's memory cache long since
  # overwritten by the end of the tree (S3: the on-disk blob cache is kept).
  sync; echo 3 > /proc/sys/vm/drop_caches
  step "mount cp -a cold, same mount" "$MPID" cp -a "$V" "$W/tmpfs/mount"
  rm -rf "$W/tmpfs/mount"
  echo "mount RSS: $(awk '/VmHWM/ {print $2 / 1024 " MiB peak"}' "/proc/$MPID/status")"
  stop_mount
  if [ -n "$FILE_CACHE" ]; then
    echo "file cache: $(du -sh "$W"/cache/cofre/*/files | cut -f1)"
    drop; start_mount
    step "mount cp -a cold, files kept" "$MPID" cp -a "$V" "$W/tmpfs/mount"
    rm -rf "$W/tmpfs/mount"
    echo "mount RSS: $(awk '/VmHWM/ {print $2 / 1024 " MiB peak"}' "/proc/$MPID/status")"
    stop_mount
  fi
done
