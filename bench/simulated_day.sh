#!/usr/bin/env bash
# A day of `cofre run` with the clock injected: the timer's 96 quarter-hour runs from
# Sunday 00:00 UTC, on the users' shape of configuration (a database dump every 4 hours plus
# a weekly class, files daily at 02:00), on a local repository. Prints what each run took,
# the snapshots, the repository size and the metrics file at the end.
# Usage: bench/simulated_day.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
COFRE="$PWD/target/release/cofre"
W="${1:-/tmp/cofre-day}"
rm -rf "$W" && mkdir -p "$W/files"
cp -a /usr/share/doc/. "$W/files/" 2>/dev/null || true
# A dump-like stream of ~20 MB: 1% of rows change at each dump (a counter file says which).
cat > "$W/dump.py" <<'PY'
import random, sys
n = int(open(sys.argv[1]).read() or 0) if len(sys.argv) > 1 else 0
open(sys.argv[1], "w").write(str(n + 1))
rng = random.Random(n)
changed = set(rng.sample(range(200_000), 2_000)) if n else set()
out = sys.stdout
out.write("COPY public.events (id, account, amount, payload) FROM stdin;\n")
for i in range(200_000):
    v = n if i in changed else 0
    out.write(f"{i}\taccount-{i % 7919}\t{(i * 37) % 100000}.{i % 100:02d}\tevent {hash((i, v)) & 0xffffffffffff:012x} v{v}\n")
out.write("\\.\n")
PY
echo 0 > "$W/counter"
printf 'day password\n' > "$W/password"
cat > "$W/cofre.toml" <<TOML
repository = "$W/repo"
password_file = "$W/password"
catalog = "$W/catalog.db"
metrics_file = "$W/cofre.prom"

[sets.db]
command = "PYTHONHASHSEED=0 python3 $W/dump.py $W/counter"
stdin_name = "/dumps/app.sql"
every = "4h"
keep = { within = "30d" }

[sets.db.weekly]
at = "Sun 02:00"
keep = { weekly = 52 }

[sets.files]
paths = ["$W/files"]
at = "02:00"
keep = { daily = 30, weekly = 52 }
prune = true
TOML
export COFRE_CONFIG="$W/cofre.toml" XDG_CACHE_HOME="$W/cache"
"$COFRE" init >/dev/null
start=$(date +%s.%N)
for q in $(seq 0 95); do
    now=$(date -u -d "2026-11-22T00:00:00Z + $((q * 15)) minutes" +%Y-%m-%dT%H:%M:%SZ)
    t0=$(date +%s.%N)
    out=$("$COFRE" run --now "$now")
    t1=$(date +%s.%N)
    done_lines=$(grep -E ' (done|failed|skipped) ' <<<"$out" || true)
    if [ -n "$done_lines" ]; then
        printf '%s  %5.2f s\n' "$now" "$(echo "$t1 - $t0" | bc)"
        sed 's/^/    /' <<<"$done_lines"
    fi
done
end=$(date +%s.%N)
echo "96 runs in $(echo "$end - $start" | bc | cut -c1-6) s"
echo "== snapshots =="
"$COFRE" snapshots
echo "== repository: $(du -sb "$W/repo" | cut -f1) bytes; files source: $(du -sb "$W/files" | cut -f1) bytes =="
echo "== schedule status at the end of the day =="
"$COFRE" schedule status --now 2026-11-23T00:00:00Z
echo "== $W/cofre.prom =="
grep -v '^#' "$W/cofre.prom"
