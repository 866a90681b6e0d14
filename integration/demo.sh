#!/usr/bin/env bash
# The main job on the embedded default: a local repository. Snapshots a directory,
# mounts every snapshot, shows it, restores a file with cp, unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
COFRE="$PWD/target/release/cofre"
DEMO="${COFRE_DEMO_DIR:-/tmp/cofre-demo}"
SRC="${1:-$PWD/src}"
rm -rf "$DEMO"
mkdir -p "$DEMO/mnt"
export COFRE_REPO="$DEMO/repo" COFRE_PASSWORD="demo password" XDG_CACHE_HOME="$DEMO/cache"

"$COFRE" init
"$COFRE" ingest --set demo "$SRC"
"$COFRE" snapshots

"$COFRE" mount "$DEMO/mnt" &
MOUNT_PID=$!
trap 'kill -TERM $MOUNT_PID 2>/dev/null || true; wait $MOUNT_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -L "$DEMO/mnt/demo/latest" ] && break; sleep 0.1; done

echo "== the mount =="
find "$DEMO/mnt" -maxdepth 5 | sort
echo "== $DEMO/mnt/demo/latest$SRC =="
ls -la "$DEMO/mnt/demo/latest$SRC"
echo "== restore is cp =="
cp -a "$DEMO/mnt/demo/latest$SRC" "$DEMO/restored"
diff -r "$SRC" "$DEMO/restored" && echo "restored copy is identical to $SRC"
