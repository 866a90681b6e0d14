#!/usr/bin/env bash
# `cofre serve` downloads (issue 23): a directory of FILES files and about GB GiB streamed
# as .tar and as .zip over HTTP, beside `restic dump` of the same directory (restic's own
# tar of a directory). Wall time and the server's peak RSS (VmHWM) after each download;
# the issue's bound is 150 MB for 50k files and 2 GB.
# Needs root (drop_caches), restic and curl. Usage: FILES=50000 GB=2 bench/serve.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-serve}"
FILES=${FILES:-50000}
GB=${GB:-2}
# shellcheck source=bench/mailtree.sh
. "$ROOT/bench/mailtree.sh"
workdir

# FILES files of random sizes averaging GB GiB / FILES, incompressible, in 100 directories.
python3 - "$C" "$FILES" "$GB" <<'PY'
import os, random, sys
root, n, gb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(2)
mean = int(gb * (1 << 30) / n)
for d in range(100):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
for i in range(n):
    with open(f"{root}/d{i % 100:02}/f{i:06}.bin", "wb") as f:
        f.write(os.urandom(rng.randint(1, 2 * mean)))
PY
note tree bytes "$(du -sb "$C" | cut -f1)"
"$COFRE" init > /dev/null
restic init > /dev/null
"$COFRE" ingest -q "$C" > /dev/null
restic backup -q "$C" > /dev/null

export COFRE_CONFIG="$W/cofre.toml"
echo bench-pw | "$COFRE" serve passwd bench > /dev/null 2>&1
"$COFRE" serve --listen 127.0.0.1:0 > "$W/serve.out" 2> "$W/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$W/serve.out" && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/serve.out")
JAR="$W/jar"
token=$(curl -s -c "$JAR" -b "$JAR" "$URL/login" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')
curl -s -c "$JAR" -b "$JAR" -o /dev/null -d "user=bench&password=bench-pw&csrf=$token" "$URL/login"
note cofre-serve startup-peak-rss-mib "$(( $(awk '/VmHWM/ {print $2}' /proc/$PID/status) / 1024 ))"

for fmt in tar zip; do
    # Peak RSS during this download alone (VmHWM also holds the key derivation at start).
    (while sleep 0.1; do awk '/VmRSS/ {print $2}' /proc/$PID/status; done) > "$W/rss.txt" &
    SAMPLER=$!
    drop
    start=$(date +%s.%N)
    bytes=$(curl -s -b "$JAR" "$URL/archive/default/latest$C?format=$fmt" | wc -c)
    end=$(date +%s.%N)
    note cofre-serve "$fmt-seconds" "$(echo "$end - $start" | bc)"
    note cofre-serve "$fmt-bytes" "$bytes"
    kill $SAMPLER
    note cofre-serve "$fmt-peak-rss-mib" "$(( $(sort -n "$W/rss.txt" | tail -1) / 1024 ))"
done
measure restic dump-tar sh -c "restic dump latest '$C' | wc -c"
