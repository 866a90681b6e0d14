#!/usr/bin/env bash
# The users' plan with its archive tier (issue 25): 4-hourly STANDARD snapshots and a weekly
# GLACIER one, over WEEKS simulated weeks (snapshot times given with --time), in two
# repositories that differ only in the weekly: self-contained (the default for GLACIER) or
# sharing the hot data (--no-self-contained). Then the 4-hourly snapshots expire (all
# forgotten, as 30-day retention does to old ones) and prune runs: what each layout stores,
# by class, and what it costs a month at AWS list prices (`stats --provider aws`).
# Corpus: a copy of /usr/share/doc plus a 20 MB file 1% of which changes every 4 hours and
# an append-only log; 30 doc files change every day. Local repositories record each pack's
# class in the index as S3 does, so the bytes by class are the ones S3 would bill.
# Usage: bench/archive.sh [WEEKS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
WEEKS=${1:-3}
W=${W:-/var/tmp/cofre-archive}
cargo build --release --quiet
C="$PWD/target/release/cofre"
rm -rf "$W"; mkdir -p "$W/src"
rsync -a /usr/share/doc/ "$W/src/doc/"
head -c 20000000 /dev/urandom > "$W/src/app.db"
export COFRE_PASSWORD=bench XDG_CACHE_HOME=$W/cache
echo "corpus: $(find "$W/src" | wc -l) entries, $(du -sh "$W/src" | cut -f1); $WEEKS weeks; $(nproc) cores, $(uname -r)"
for layout in self-contained shared; do
    export COFRE_REPO=$W/repo-$layout
    "$C" init > /dev/null
done
mutate() { # STEP: 1% of app.db rewritten, log appended; once a day 30 doc files touched
    python3 - "$W/src" "$1" <<'PY'
import os, random, sys
src, step = sys.argv[1], int(sys.argv[2])
r = random.Random(step)
with open(os.path.join(src, "app.db"), "r+b") as f:
    for _ in range(20):
        f.seek(r.randrange(20_000_000 - 10_000))
        f.write(os.urandom(10_000))
with open(os.path.join(src, "app.log"), "a") as f:
    for i in range(2000):
        f.write(f"{step} {i} request served in {r.randrange(1000)} ms\n")
if step % 6 == 0:
    docs = []
    for d, _, fs in os.walk(os.path.join(src, "doc")):
        docs += [os.path.join(d, x) for x in fs if not os.path.islink(os.path.join(d, x))]
    for p in r.sample(sorted(docs), 30):
        with open(p, "ab") as f:
            f.write(b"\nchanged\n")
PY
}
start=$(date -u -d '2026-01-04 00:00' +%s)   # a Sunday
step=0
for week in $(seq "$WEEKS"); do
    for slot in $(seq 42); do
        step=$((step + 1)); mutate "$step"
        t=$(date -u -d "@$((start + step * 14400))" +%Y-%m-%dT%H:%M:%SZ)
        for layout in self-contained shared; do
            COFRE_REPO=$W/repo-$layout "$C" ingest -q --set files --tag 4h --time "$t" "$W/src" > /dev/null
        done
    done
    for layout in self-contained shared; do
        extra=(); [ "$layout" = shared ] && extra=(--no-self-contained)
        COFRE_REPO=$W/repo-$layout "$C" ingest -q --set files --tag weekly --time "$t" \
            --data-storage-class GLACIER "${extra[@]}" "$W/src" > /dev/null
    done
done
report() { # LAYOUT WHEN
    COFRE_REPO=$W/repo-$1 "$C" stats --json --provider aws > "$W/stats.json"
    python3 - "$W/stats.json" "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
by, dup = s["stored_by_class"], s["also_in_other_classes"]
mb = lambda b: "%8.1f MB" % (b / 1e6)
print("%-15s %-28s STANDARD %s  GLACIER %s (of it also in STANDARD %s)  $%.5f/month" % (
    sys.argv[2], sys.argv[3], mb(by.get("STANDARD", 0)), mb(by.get("GLACIER", 0)),
    mb(dup.get("GLACIER", 0)), s["monthly_dollars"]))
PY
}
for layout in self-contained shared; do report "$layout" "with the 4-hourly snapshots"; done
for layout in self-contained shared; do
    export COFRE_REPO=$W/repo-$layout
    "$C" snapshots --json | python3 -c '
import json, subprocess, sys
ids = [s["id"] for s in json.load(sys.stdin) if "4h" in s["tags"]]
subprocess.run([sys.argv[1], "forget", *ids], check=True, stdout=subprocess.DEVNULL)
' "$C"
    "$C" prune --max-unused 0% > /dev/null
    report "$layout" "weeklies only, after prune"
    COFRE_REPO=$W/repo-$layout "$C" check > /dev/null
done
rm -rf "$W"
