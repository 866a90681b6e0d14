#!/usr/bin/env bash
# `cofre copy` local → Garage beside `restic copy` on the same two snapshots of bench/run.sh's
# corpus, and beside a plain S3 upload (boto3, 16 threads) of cofre's own packs: the floor a
# copy that re-encodes nothing should reach. Page cache dropped before each step.
# Usage: bench/copy.sh [WORKDIR]   (default /var/tmp/cofre-copy; ~4 GB free; root for drop_caches)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
W="${1:-/var/tmp/cofre-copy}"
cargo build --release --quiet
COFRE="$ROOT/target/release/cofre"
export PATH="$HOME/.cargo/bin:$PATH"
command -v restic >/dev/null && command -v garage >/dev/null || { echo "run integration/install-deps.sh"; exit 1; }

rm -rf "$W"; mkdir -p "$W"
export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench COFRE_TO_PASSWORD=bench2 XDG_CACHE_HOME="$W/cache"
export RESTIC_CACHE_DIR="$W/cache/restic"
C="$W/corpus"
mkdir -p "$C"
rsync -a /usr/lib/x86_64-linux-gnu /usr/include /usr/share/doc "$C/"
python3 "$ROOT/bench/gen_dump.py" "$C/dump.sql" 0

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
measure() {  # STEP CMD...: wall, user and system seconds, peak RSS MiB
    local step=$1; shift
    drop
    /usr/bin/time -f "%e %U %S %M" -o "$W/time.out" "$@" > "$W/last.log" 2>&1 || { cat "$W/last.log"; exit 1; }
    read -r secs user sys kb < "$W/time.out"
    printf '| %s | %s | %s / %s | %s |\n' "$step" "$secs" "$user" "$sys" "$((kb / 1024))"
}

# Two snapshots in each tool's local repository: the corpus, then after bench/run.sh's mutation.
"$COFRE" --repo "$W/cofre" init > /dev/null
restic -r "$W/restic" init > /dev/null
for state in 0 1; do
    [ "$state" = 1 ] && python3 "$ROOT/bench/gen_dump.py" "$C/dump.sql" 1 && head -c 20000000 /dev/urandom > "$C/new.bin"
    "$COFRE" --repo "$W/cofre" ingest -q "$C" > /dev/null
    restic -r "$W/restic" backup -q "$C" > /dev/null
done
echo "repositories: cofre $(du -sb "$W/cofre" | cut -f1) B, restic $(du -sb "$W/restic" | cut -f1) B"

integration/garage.sh start "$W/garage" > /dev/null
trap 'integration/garage.sh stop "$W/garage"' EXIT
# shellcheck disable=SC1091
source "$W/garage/env"
export AWS_DEFAULT_REGION=garage
T="s3://$COFRE_TEST_BUCKET/cofre-copy"
COFRE_FROM_PASSWORD=bench COFRE_PASSWORD=bench2 "$COFRE" --repo "$T" init --copy-params-from "$W/cofre" > /dev/null
RT="s3:$AWS_ENDPOINT_URL/$COFRE_TEST_BUCKET/restic-copy"
RESTIC_FROM_PASSWORD=bench restic -r "$RT" init --from-repo "$W/restic" --copy-chunker-params > /dev/null

echo "| step | wall s | user / system s | peak RSS MiB |"
echo "|---|---|---|---|"
measure "cofre copy, 2 snapshots" "$COFRE" --repo "$W/cofre" copy --to "$T"
measure "restic copy, 2 snapshots" env RESTIC_FROM_PASSWORD=bench restic -r "$RT" copy --from-repo "$W/restic"
measure "cofre copy again (nothing to do)" "$COFRE" --repo "$W/cofre" copy --to "$T"
measure "restic copy again (nothing to do)" env RESTIC_FROM_PASSWORD=bench restic -r "$RT" copy --from-repo "$W/restic"
measure "plain upload of cofre's packs (boto3, 16 threads)" python3 - "$W/cofre" "$COFRE_TEST_BUCKET" <<'PY'
import os, sys, boto3, concurrent.futures as cf
root, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "data")) for f in fs]
def put(p):
    with open(p, "rb") as fh:
        s3.put_object(Bucket=bucket, Key="plain/" + os.path.relpath(p, root), Body=fh.read())
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(put, files))
PY
COFRE_PASSWORD=bench2 "$COFRE" --repo "$T" check --read-data | tail -1
