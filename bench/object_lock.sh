#!/usr/bin/env bash
# What S3 Object Lock costs an ingest (issue 25): the same corpus ingested into two
# repositories on one moto server (integration/moto-iam.sh), one made with --object-lock
# governance, one without: an initial ingest and STEPS incremental ones (1% of a 20 MB file
# rewritten each time), then `lock extend` with nothing to do. Wall time of each step, and
# the requests each made, by kind, counted from moto's request log.
# Usage: bench/object_lock.sh [STEPS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-3}
W=${W:-/var/tmp/cofre-objlock}
cargo build --release --quiet
C="$PWD/target/release/cofre"
rm -rf "$W"; mkdir -p "$W/src"
rsync -a /usr/share/doc/ "$W/src/doc/"
head -c 20000000 /dev/urandom > "$W/src/app.db"
integration/moto-iam.sh start "$W/moto" > /dev/null
trap 'integration/moto-iam.sh stop "$W/moto"' EXIT
# shellcheck disable=SC1091
. "$W/moto/env"
export COFRE_PASSWORD=bench XDG_CACHE_HOME=$W/cache
LOG="$W/moto/server.log"
echo "corpus: $(find "$W/src" | wc -l) entries, $(du -sh "$W/src" | cut -f1); moto on loopback; $(nproc) cores, $(uname -r); $(date -u +%F)"
requests() { # lines of moto's log since line $1, by kind
    tail -n +"$1" "$LOG" | python3 -c '
import re, sys, collections
c = collections.Counter()
for l in sys.stdin:
    m = re.search(r"\"(GET|PUT|HEAD|POST|DELETE) (\S+)", l)
    if not m: continue
    verb, path = m.groups()
    q = path.split("?", 1)[1] if "?" in path else ""
    kind = verb + ("?" + q.split("=")[0].split("&")[0] if q and not q.startswith("list-type") else "") + (" list" if "list-type" in q else "")
    c[kind] += 1
print(sum(c.values()), " ".join(f"{k}:{v}" for k, v in sorted(c.items())))'
}
step() { # NAME REPO ARGS...: time and requests of one command
    local name=$1 repo=$2; shift 2
    local from; from=$(($(wc -l < "$LOG") + 1))
    local t0; t0=$(date +%s.%N)
    COFRE_REPO=$repo "$C" "$@" > /dev/null
    local t1; t1=$(date +%s.%N)
    printf "| %s | %s | %.2f | %s |\n" "$name" "${repo##*/}" "$(echo "$t1 - $t0" | bc)" "$(requests "$from")"
}
plain=s3://$COFRE_TEST_BUCKET/plain
locked=s3://$COFRE_TEST_BUCKET/locked
COFRE_REPO=$plain "$C" init > /dev/null
COFRE_REPO=$locked "$C" init --object-lock governance --lock-days 30 > /dev/null
echo "| step | repository | seconds | requests (total, by kind) |"
echo "|---|---|---|---|"
for repo in $plain $locked; do
    step "initial ingest" "$repo" ingest --set files "$W/src"
done
for i in $(seq "$STEPS"); do
    python3 -c "
import os, random
r = random.Random($i)
with open('$W/src/app.db', 'r+b') as f:
    for _ in range(20):
        f.seek(r.randrange(20_000_000 - 10_000)); f.write(os.urandom(10_000))"
    for repo in $plain $locked; do
        step "incremental $i" "$repo" ingest --set files "$W/src"
    done
done
step "lock extend (nothing due)" "$locked" lock extend
