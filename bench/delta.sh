#!/usr/bin/env bash
# Delta compression of changed dumps (issue 12), cofre beside restic and borg, same data,
# one run. Results: docs/benchmarks.md "Deltas".
#   1. a plain-SQL dump (ROWS rows, ~100 bytes each) with 1% of rows changed at random
#      between generations, in place and moved to the end of the table: bytes each
#      generation adds, for cofre (deltas), cofre --no-delta, restic and borg;
#   2. reading the last generation (deltas) and the first (whole chunks) back: `cofre
#      restore`, and `cp` out of the mount, page cache dropped before each;
#   3. DAYS simulated days of 4-hourly dumps (DAYS*6) of a ROWS30-row dump with 1% scattered
#      changes each: total repository size for cofre and restic, and `cofre stats`'s bill.
# usage: bench/delta.sh [part...]   (default: 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COFRE=$ROOT/target/release/cofre
W=${W:-/var/tmp/cofre-bench-delta}
ROWS=${ROWS:-2000000}
GENS=${GENS:-3}
ROWS30=${ROWS30:-400000}
DAYS=${DAYS:-30}
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
HAVE_BORG=$(command -v borg >/dev/null && echo 1 || echo 0)
parts=${*:-1 2 3}
mkdir -p "$W"

bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }

# ingest TOOL REPO FILE: stores FILE (as db/app.sql) in TOOL's repository.
ingest() {
  local tool=$1 repo=$2 file=$3
  case $tool in
    cofre) XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" ingest -q --set db --stdin-name db/app.sql < "$file" >/dev/null ;;
    cofre-nodelta) XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" ingest -q --no-delta --set db --stdin-name db/app.sql < "$file" >/dev/null ;;
    restic) restic -q -r "$repo" backup --stdin --stdin-filename app.sql < "$file" >/dev/null ;;
    borg) borg create --compression zstd,3 "$repo::g$(date +%s%N)" - < "$file" ;;
  esac
}

init() {
  local tool=$1 repo=$2
  rm -rf "$repo" "$repo.cache"
  case $tool in
    cofre | cofre-nodelta) XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" init >/dev/null ;;
    restic) restic -q -r "$repo" init >/dev/null ;;
    borg) borg init -e repokey "$repo" ;;
  esac
}

tools="cofre cofre-nodelta restic"
[ "$HAVE_BORG" = 1 ] && tools="$tools borg"

if [[ " $parts " == *" 1 "* ]]; then
  echo "## 1. $ROWS-row dump, 1% of rows changed per generation ($(date -u +%F), $(nproc) cores)"
  for mode in inplace moved; do
    python3 bench/gen_scattered.py "$W/dump-$mode" "$ROWS" "$GENS" "$mode"
    size=$(stat -c %s "$W/dump-$mode.0")
    echo
    echo "### $mode: dump $size bytes"
    echo "| tool | gen | added bytes | % of dump | ingest s |"
    echo "|---|---|---|---|---|"
    for tool in $tools; do
      repo=$W/$tool-$mode
      init "$tool" "$repo"
      prev=0
      for g in $(seq 0 $((GENS - 1))); do
        t0=$(now)
        ingest "$tool" "$repo" "$W/dump-$mode.$g"
        t1=$(now)
        cur=$(bytes "$repo")
        printf '| %s | %d | %d | %.2f | %.2f |\n' "$tool" "$g" $((cur - prev)) \
          "$(echo "100 * ($cur - $prev) / $size" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"
        prev=$cur
      done
    done
  done
fi

if [[ " $parts " == *" 2 "* ]]; then
  echo
  echo "## 2. Reading generation $((GENS - 1)) (deltas) and 0 (whole), moved-rows repository"
  echo "| read | gen 0 s | gen $((GENS - 1)) s | MB/s gen 0 | MB/s gen $((GENS - 1)) |"
  echo "|---|---|---|---|---|"
  repo=$W/cofre-moved
  size=$(stat -c %s "$W/dump-moved.0")
  ids=$(XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" snapshots --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["id"], v[-1]["id"])')
  first=${ids% *}; last=${ids#* }
  row=("cofre restore")
  for id in $first $last; do
    rm -rf "$W/out"; drop_caches
    t0=$(now); XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" restore "${id:0:12}" --target "$W/out" >/dev/null; t1=$(now)
    row+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '| %s | %.2f | %.2f | %.0f | %.0f |\n' "${row[0]}" "${row[1]}" "${row[2]}" \
    "$(echo "$size / ${row[1]} / 1000000" | bc -l)" "$(echo "$size / ${row[2]} / 1000000" | bc -l)"
  mkdir -p "$W/mnt"
  XDG_CACHE_HOME=$repo.cache $COFRE -r "$repo" mount "$W/mnt" 2>"$W/mount.log" &
  mpid=$!
  for _ in $(seq 100); do mountpoint -q "$W/mnt" && break; sleep 0.1; done
  row=("cp from the mount")
  for id in $first $last; do
    rm -rf "$W/out"; mkdir -p "$W/out"; drop_caches
    t0=$(now); cp "$W/mnt/ids/${id:0:8}/db/app.sql" "$W/out/"; t1=$(now)
    cmp -s "$W/out/app.sql" "$W/dump-moved.$([ "$id" = "$first" ] && echo 0 || echo $((GENS - 1)))" || echo "MISMATCH $id" >&2
    row+=("$(echo "$t1 - $t0" | bc -l)")
  done
  kill "$mpid"; wait "$mpid" || true
  printf '| %s | %.2f | %.2f | %.0f | %.0f |\n' "${row[0]}" "${row[1]}" "${row[2]}" \
    "$(echo "$size / ${row[1]} / 1000000" | bc -l)" "$(echo "$size / ${row[2]} / 1000000" | bc -l)"
  rm -rf "$W/out"
fi

if [[ " $parts " == *" 3 "* ]]; then
  n=$((DAYS * 6))
  echo
  echo "## 3. $DAYS days of 4-hourly dumps: $n generations of a $ROWS30-row dump, 1% scattered changes each"
  for tool in cofre restic; do init "$tool" "$W/$tool-30d"; done
  t0=$(now)
  each="XDG_CACHE_HOME=$W/cofre-30d.cache $COFRE -r $W/cofre-30d ingest -q --set db --stdin-name db/app.sql < $W/dump30 >/dev/null"
  each="$each && restic -q -r $W/restic-30d backup --stdin --stdin-filename app.sql < $W/dump30 >/dev/null"
  python3 bench/gen_scattered.py "$W/dump30" "$ROWS30" "$n" moved --each "$each"
  t1=$(now)
  size=$(stat -c %s "$W/dump30")
  echo "dump $size bytes; $n generations in $(printf %.0f "$(echo "$t1 - $t0" | bc -l)") s (generation and both tools)"
  echo "| tool | repository bytes | per generation | x one dump |"
  echo "|---|---|---|---|"
  for tool in cofre restic; do
    b=$(bytes "$W/$tool-30d")
    printf '| %s | %d | %d | %.1f |\n' "$tool" "$b" $((b / n)) "$(echo "$b / $size" | bc -l)"
  done
  echo
  echo "cofre stats (AWS S3 Standard prices):"
  XDG_CACHE_HOME=$W/cofre-30d.cache $COFRE -r "$W/cofre-30d" stats --provider aws
  # The last dump read back through the mount, beside the same dump stored without deltas.
  init cofre "$W/cofre-whole"
  ingest cofre-nodelta "$W/cofre-whole" "$W/dump30"
  echo
  echo "| reading generation $n through the mount (cp) | s | MB/s |"
  echo "|---|---|---|"
  for r in cofre-30d cofre-whole; do
    # Best of three, each from a fresh mount (its chunk cache would serve the second read).
    best=
    for _ in 1 2 3; do
      mkdir -p "$W/mnt"
      XDG_CACHE_HOME=$W/$r.cache $COFRE -r "$W/$r" mount "$W/mnt" 2>"$W/mount.log" &
      mpid=$!
      for _ in $(seq 100); do mountpoint -q "$W/mnt" && break; sleep 0.1; done
      rm -f "$W/out.sql"; drop_caches
      t0=$(now); cp "$W/mnt/db/latest/db/app.sql" "$W/out.sql"; t1=$(now)
      kill "$mpid"; wait "$mpid" || true
      cmp -s "$W/out.sql" "$W/dump30" || echo "MISMATCH $r" >&2
      t=$(echo "$t1 - $t0" | bc -l)
      if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    printf '| %s | %.2f | %.0f |\n' "$([ $r = cofre-30d ] && echo "deltas ($n generations)" || echo "stored whole")" "$best" "$(echo "$size / $best / 1000000" | bc -l)"
  done
  rm -f "$W/out.sql"
fi
