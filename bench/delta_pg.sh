#!/usr/bin/env bash
# A real PostgreSQL (issue 12): `pgbench -i -s SCALE` with text-like rows, then ROUNDS rounds
# of `pgbench -T SECS` followed by VACUUM; each state dumped as -Fp, -Fc and -Fc -Z0 and
# stored by cofre, restic and borg (one repository per tool and format). Prints the bytes
# each round adds. Results: docs/benchmarks.md "Deltas". Needs root (runs PostgreSQL as
# the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."
COFRE=$PWD/target/release/cofre
W=${W:-/var/tmp/cofre-bench-pg}
SCALE=${SCALE:-30}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-60}
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG=$W/pg
SOCK=$PG/sock
tools="cofre restic"
command -v borg >/dev/null && tools="$tools borg"

rm -rf "$W"; mkdir -p "$SOCK"; chmod 777 "$W" "$PG" "$SOCK"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$BIN/initdb" --no-sync -A trust -U postgres -D "$PG/data" >/dev/null
as_pg "$BIN/pg_ctl" -D "$PG/data" -o "-k $SOCK -c listen_addresses='' -c fsync=off" -w -l "$PG/log" start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$PG/data" -m fast stop >/dev/null || true' EXIT
psql_() { as_pg psql -h "$SOCK" -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_ -c "create database bench"
as_pg pgbench -h "$SOCK" -i -q -s "$SCALE" bench 2>/dev/null
# Text-like rows: pgbench's filler is blanks, which any compressor removes.
psql_ -d bench -c "update pgbench_accounts set filler = md5(aid::text) || ' ' || substr(md5((aid * 7)::text), 1, 20)"
psql_ -d bench -c "vacuum full pgbench_accounts"

declare -A prev
for tool in $tools; do
  for fmt in p c cz0; do
    repo=$W/$tool-$fmt
    case $tool in
      cofre) XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" init >/dev/null ;;
      restic) restic -q -r "$repo" init >/dev/null ;;
      borg) borg init -e repokey "$repo" ;;
    esac
    prev[$tool-$fmt]=0
  done
done
bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}'; }

echo "## PostgreSQL $(basename "$(dirname "$BIN")"), pgbench -s $SCALE, $ROUNDS rounds of -T $SECS + VACUUM ($(date -u +%F), $(nproc) cores)"
echo "| round | format | dump bytes | cofre added | restic added | borg added |"
echo "|---|---|---|---|---|---|"
for r in $(seq 0 "$ROUNDS"); do
  if [ "$r" -gt 0 ]; then
    tx=$(as_pg pgbench -h "$SOCK" -T "$SECS" -c 2 bench 2>/dev/null | awk '/number of transactions actually processed/ {print $NF}')
    psql_ -d bench -c "vacuum"
    echo "<!-- round $r: $tx transactions -->"
  fi
  for fmt in p c cz0; do
    dump=$W/dump.$fmt
    case $fmt in
      p) as_pg pg_dump -h "$SOCK" -Fp bench > "$dump" ;;
      c) as_pg pg_dump -h "$SOCK" -Fc bench > "$dump" ;;
      cz0) as_pg pg_dump -h "$SOCK" -Fc -Z0 bench > "$dump" ;;
    esac
    line="| $r | $fmt | $(stat -c %s "$dump")"
    for tool in cofre restic borg; do
      repo=$W/$tool-$fmt
      case $tool in
        cofre) XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" ingest -q --set db --stdin-name db/dump < "$dump" >/dev/null ;;
        restic) restic -q -r "$repo" backup --stdin --stdin-filename dump < "$dump" >/dev/null ;;
        borg) [ -d "$repo" ] && borg create --compression zstd,3 "$repo::r$r" - < "$dump" ;;
      esac
      if [ -d "$repo" ]; then
        cur=$(bytes "$repo")
        line="$line | $((cur - prev[$tool-$fmt]))"
        prev[$tool-$fmt]=$cur
      else
        line="$line | -"
      fi
    done
    echo "$line |"
  done
done
