#!/usr/bin/env bash
# The main job on the embedded default: a local repository and one configuration file.
# `cofre run` snapshots a directory as the timer would, the schedule and metrics are shown,
# then every snapshot is mounted, shown, and restored with cp.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
COFRE="$PWD/target/release/cofre"
DEMO="${COFRE_DEMO_DIR:-/tmp/cofre-demo}"
SRC="${1:-$PWD/src}"
rm -rf "$DEMO"
mkdir -p "$DEMO/mnt"
printf 'demo password\n' > "$DEMO/password"
cat > "$DEMO/cofre.toml" <<EOF
repository = "$DEMO/repo"
password_file = "$DEMO/password"
metrics_file = "$DEMO/cofre.prom"

[sets.demo]
paths = ["$SRC"]
exclude = ["*.tmp"]
every = "4h"
keep = { within = "30d", weekly = 52 }
EOF
export COFRE_CONFIG="$DEMO/cofre.toml" XDG_CACHE_HOME="$DEMO/cache"

"$COFRE" config validate
"$COFRE" init
"$COFRE" run                      # what the timer calls: every set that is due
"$COFRE" snapshots
echo "== the timer (systemd: cofre schedule install; here the crontab line) =="
"$COFRE" schedule install --cron
"$COFRE" schedule status
echo "== metrics for node_exporter ($DEMO/cofre.prom) =="
grep -v '^#' "$DEMO/cofre.prom"

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
