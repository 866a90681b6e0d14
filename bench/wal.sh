#!/usr/bin/env bash
# WAL archiving (issue 26): a real PostgreSQL archiving with `cofre wal-push` while pgbench
# runs, then (1) the archive's lag under load, (2) a burst of BURST segments pushed one by
# one as PostgreSQL's archiver does and drained into the repository, (3) objects (PUTs)
# per segment, (4) the replay time of `cofre pitr --to latest`, (5) that of an hour of WAL
# at the users' rate (STEPS=burst,hour picks (2) and (5)). pgBackRest's archive-push
# on the same burst when it is installed. Results: docs/benchmarks.md "WAL archiving".
# Needs root (runs PostgreSQL as the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."
COFRE=$PWD/target/release/cofre
W=${W:-/var/tmp/cofre-bench-wal}
SCALE=${SCALE:-20}
SECS=${SECS:-60}
BURST=${BURST:-1000}
FLUSH=${FLUSH:-60s}
# The users' rate, 4 segments a minute (issue 26), for an hour: what a 1-hour PITR replays.
HOUR_SEGS=${HOUR_SEGS:-240}
STEPS=${STEPS:-burst,hour}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG=$W/pg
SOCK=$W/sock

rm -rf "$W"; mkdir -p "$W" "$SOCK"; chmod 777 "$W" "$SOCK"; chown postgres "$W"
as_pg() { runuser -u postgres -- env HOME="$W" XDG_CACHE_HOME="$W/cache" "$@"; }
echo bench > "$W/pw"; chown postgres "$W/pw"; chmod 600 "$W/pw"
G="--repo $W/repo --password-file $W/pw --catalog $W/cache/catalog.db"
cofre() { as_pg "$COFRE" $G "$@"; }
cofre init >/dev/null
as_pg "$BIN/initdb" --no-sync -A trust -U postgres -D "$PG" >/dev/null
cat >> "$PG/postgresql.conf" <<CONF
wal_level = replica
archive_mode = on
archive_command = '$COFRE $G wal-push --set db --spool $W/spool --flush-every $FLUSH %p'
log_timezone = 'UTC'
max_wal_size = 1GB
unix_socket_directories = '$SOCK'
listen_addresses = ''
CONF
as_pg "$BIN/pg_ctl" -D "$PG" -w -l "$W/log" start >/dev/null
trap 'for d in "$PG" "$W/restored" "$W/restored-hour"; do as_pg "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true; done' EXIT
psql_() { as_pg psql -h "$SOCK" -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
as_pg pgbench -h "$SOCK" -i -q -s "$SCALE" postgres 2>/dev/null
cofre ingest --set db --stdin-name /pg/base.tar \
  --stdin-from-command "$BIN/pg_basebackup -h $SOCK -D - -Ft -X none -c fast" >/dev/null 2>&1

echo "== archiving under pgbench -c 4 -T $SECS (flush every $FLUSH)"
as_pg pgbench -h "$SOCK" -c 4 -j 2 -T "$SECS" postgres >/dev/null 2>&1 &
bench=$!
max_ready=0; max_lag=0
while kill -0 $bench 2>/dev/null; do
  ready=$(ls "$PG/pg_wal/archive_status" | grep -c '\.ready$' || true)
  # Age of the oldest file still waiting in the spool: the repository's RPO right now.
  lag=$(find "$W/spool" -maxdepth 1 -name '0*' -printf '%T@\n' 2>/dev/null | sort -n | head -1)
  lag=${lag:+$(( $(date +%s) - ${lag%.*} ))}
  (( ready > max_ready )) && max_ready=$ready
  (( ${lag:-0} > max_lag )) && max_lag=${lag:-0}
  sleep 1
done
segs=$(psql_ -c "select archived_count from pg_stat_archiver")
echo "segments archived: $segs; most .ready waiting in pg_wal: $max_ready; oldest spool file at most ${max_lag}s old"
last=$(psql_ -c "select pg_walfile_name(pg_switch_wal())")
t0=$(date +%s.%N)
until [ "$(psql_ -c 'select last_archived_wal from pg_stat_archiver')" \> "$last" ] || [ "$(psql_ -c 'select last_archived_wal from pg_stat_archiver')" = "$last" ]; do sleep 0.2; done
while ls "$W/spool" | grep -q '^0'; do sleep 0.2; done
echo "after the load: all archived and in the repository $(echo "$(date +%s.%N) - $t0" | bc) s later"
objects=$(ls "$W/repo/wal" | wc -l)
echo "wal objects (PUTs): $objects for $(cofre --json wal list --set db --spool "$W/spool" | grep -c '"name"') files"
du -sh "$W/repo/wal"

echo "== pitr --to latest (replay of everything since the base backup)"
as_pg "$BIN/pg_ctl" -D "$PG" -m fast stop >/dev/null
/usr/bin/time -f "pitr: %e s wall, %M KB max RSS (cofre)" \
  runuser -u postgres -- env HOME="$W" XDG_CACHE_HOME="$W/cache" "$COFRE" $G pitr --set db --to latest \
  --target "$W/restored" --start --port 5499 --pg-bin "$BIN"
as_pg "$BIN/pg_ctl" -D "$W/restored" -m fast stop >/dev/null

if [[ $STEPS == *burst* ]]; then
echo "== burst: $BURST segments pushed one at a time, as PostgreSQL's archiver does"
# A real segment of the pgbench run (from the archive), under BURST names.
sample=$(cofre --json wal list --set db --spool "$W/spool" | grep '"name"' | sed -n 10p | cut -d'"' -f4)
mkdir -p "$W/burst"; chown postgres "$W/burst"
cofre wal-fetch --set db "$sample" "$W/burst/sample"
echo "sample $sample: $(stat -c %s "$W/burst/sample") bytes, $(zstd -1 -c "$W/burst/sample" | wc -c) with zstd -1"
for i in $(seq 1 "$BURST"); do ln "$W/burst/sample" "$(printf '%s/00000009%016X' "$W/burst" "$i")"; done
rm "$W/burst/sample"
# Pushed one at a time while the flusher drains the spool (it flushes each 256 MiB).
t0=$(date +%s.%N)
for f in "$W"/burst/*; do
  as_pg "$COFRE" $G wal-push --set burst --spool "$W/spool-burst" --flush-every 1h "$f"
done
t1=$(date +%s.%N)
cofre wal flush --set burst --spool "$W/spool-burst" | tail -1
t2=$(date +%s.%N)
echo "push: $(echo "scale=1; $BURST / ($t1 - $t0)" | bc) segments/s; all in the repository after $(echo "$t2 - $t0" | bc) s: $(echo "scale=1; $BURST / ($t2 - $t0)" | bc) segments/s"
echo "objects: $(ls "$W/repo/wal" | wc -l) in total; $(du -sh "$W/repo/wal" | cut -f1)"

if command -v pgbackrest >/dev/null; then
  echo "== pgBackRest archive-push, the same burst (local repository, compress-type=zst)"
  cat > "$W/pgbackrest.conf" <<CONF
[global]
repo1-path=$W/pgbr
compress-type=zst
compress-level=1
start-fast=y
log-level-console=error
[bench]
pg1-path=$W/restored
pg1-socket-path=$W/restored
pg1-port=5499
CONF
  chown postgres "$W/pgbackrest.conf"
  mkdir -p "$W/pgbr"; chown postgres "$W/pgbr"
  as_pg "$BIN/pg_ctl" -D "$W/restored" -w -o "-p 5499 -k $W/restored" -l "$W/log2" start >/dev/null
  as_pg pgbackrest --config="$W/pgbackrest.conf" --stanza=bench stanza-create >/dev/null
  as_pg "$BIN/pg_ctl" -D "$W/restored" -m fast stop >/dev/null
  t0=$(date +%s.%N)
  for f in "$W"/burst/*; do
    as_pg pgbackrest --config="$W/pgbackrest.conf" --stanza=bench archive-push "$f" 2>/dev/null || { echo "pgbackrest archive-push failed on $f"; break; }
  done
  t1=$(date +%s.%N)
  echo "pgbackrest push: $(echo "scale=1; $BURST / ($t1 - $t0)" | bc) segments/s"
  du -sh "$W/pgbr/archive"
fi
fi

if [[ $STEPS == *hour* ]]; then
echo "== an hour of WAL at the users' rate: $HOUR_SEGS segments after a new base backup, then pitr --to latest"
as_pg "$BIN/pg_ctl" -D "$PG" -w -l "$W/log" start >/dev/null
cofre ingest --set db --stdin-name /pg/base.tar \
  --stdin-from-command "$BIN/pg_basebackup -h $SOCK -D - -Ft -X none -c fast" >/dev/null 2>&1
from=$(psql_ -c "select archived_count from pg_stat_archiver")
as_pg pgbench -h "$SOCK" -c 4 -j 2 -T 3600 postgres >/dev/null 2>&1 &
bench=$!
t0=$(date +%s)
until (( $(psql_ -c "select archived_count from pg_stat_archiver") - from >= HOUR_SEGS )); do sleep 1; done
kill $bench; wait $bench 2>/dev/null || true
echo "pgbench wrote $HOUR_SEGS segments in $(( $(date +%s) - t0 )) s"
last=$(psql_ -c "select pg_walfile_name(pg_switch_wal())")
until [ "$(psql_ -c 'select last_archived_wal from pg_stat_archiver')" \> "$last" ] || [ "$(psql_ -c 'select last_archived_wal from pg_stat_archiver')" = "$last" ]; do sleep 0.2; done
while ls "$W/spool" | grep -q '^0'; do sleep 0.2; done
as_pg "$BIN/pg_ctl" -D "$PG" -m fast stop >/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
/usr/bin/time -f "pitr of an hour: %e s wall, %M KB max RSS (cofre)" \
  runuser -u postgres -- env HOME="$W" XDG_CACHE_HOME="$W/cache" "$COFRE" $G pitr --set db --to latest \
  --target "$W/restored-hour" --start --port 5498 --pg-bin "$BIN"
as_pg "$BIN/pg_ctl" -D "$W/restored-hour" -m fast stop >/dev/null
fi