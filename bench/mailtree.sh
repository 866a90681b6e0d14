# Shared by bench/million.sh, bench/churn.sh and bench/history.sh (sourced): the work
# directory, the measuring helpers and the mail-spool-like tree. Needs ROOT (the checkout)
# and W (the work directory) set.

# workdir: builds cofre, empties W, sets C (the tree), OUT (results) and both tools'
# repositories, passwords and caches under W.
workdir() {
    cargo build --release --quiet
    COFRE="$ROOT/target/release/cofre"
    command -v restic >/dev/null || { echo "apt-get install restic"; exit 1; }
    rm -rf "$W"; mkdir -p "$W"
    C="$W/tree"
    export COFRE_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache"
    export COFRE_REPO="$W/cofre-repo" RESTIC_REPOSITORY="$W/restic-repo"
    export RESTIC_CACHE_DIR="$W/cache/restic"
    OUT="$W/results.tsv"; : > "$OUT"
}

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# measure TOOL STEP CMD...: wall, user, system seconds and peak RSS (MiB), cache dropped.
measure() {
    local tool=$1 step=$2; shift 2
    drop
    /usr/bin/time -f "%e %U %S %M" -o "$W/time.out" "$@" > "$W/last.out" 2> "$W/last.log" \
        || { cat "$W/last.log"; echo "$tool $step failed"; exit 1; }
    read -r secs user sys kb < "$W/time.out"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$secs" "$user" "$sys" "$((kb / 1024))" \
        | tee -a "$OUT"
}
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" | tee -a "$OUT"; }

# make_tree ROOT N: N text files of 100 B to 8 KB, each different, in 100 directories.
make_tree() {
    python3 - "$1" "$2" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
words = [f"w{i}" for i in range(5000)]
for d in range(100):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
for i in range(n):
    line = " ".join(rng.choice(words) for _ in range(12))
    body = f"message {i}\n" + (line + "\n") * rng.randint(1, 100)
    with open(f"{root}/d{i % 100:02}/m{i:07}.txt", "w") as f:
        f.write(body)
PY
}

# churn ROOT N SEED: rewrites 1% of the N files (a line appended), like new mail and edits.
churn() {
    python3 - "$1" "$2" "$3" <<'PY'
import random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in rng.sample(range(n), n // 100):
    with open(f"{root}/d{i % 100:02}/m{i:07}.txt", "a") as f:
        f.write(f"edit {seed}\n")
PY
}
