#!/usr/bin/env bash
# A single-node Garage S3 server on loopback, for tests and benchmarks.
#   integration/garage.sh start DIR   starts it (data in DIR), prints `export` lines to DIR/env
#   integration/garage.sh stop DIR    stops it cleanly
#   integration/garage.sh restart DIR starts it again on the same ports and data (after a kill)
# Garage is AGPL and used only as a test service: installed with `cargo install garage`,
# never linked.
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2")
export PATH="$HOME/.cargo/bin:$PATH"
command -v garage >/dev/null || { echo "garage not installed: run integration/install-deps.sh" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

launch() {
    garage -c "$dir/garage.toml" server > "$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 300); do
        garage -c "$dir/garage.toml" status > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "garage did not start; see $dir/server.log" >&2; exit 1
}

case "$cmd" in
start)
    mkdir -p "$dir/meta" "$dir/data"
    s3=$(free_port); rpc=$(free_port); admin=$(free_port)
    cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
    chmod 600 "$dir/garage.toml"
    launch
    g() { garage -c "$dir/garage.toml" "$@"; }
    node=$(g node id -q | cut -d@ -f1)
    g layout assign -z dc1 -c 10G "$node" > /dev/null
    g layout apply --version 1 > /dev/null
    for _ in $(seq 100); do g bucket create cofre-test > /dev/null 2>&1 && break; sleep 0.2; done
    keyinfo=$(g key create cofre-test-key)
    key_id=$(echo "$keyinfo" | awk -F': *' '/Key ID/ {print $2; exit}')
    secret=$(echo "$keyinfo" | awk -F': *' '/Secret key/ {print $2; exit}')
    g bucket allow --read --write --owner cofre-test --key cofre-test-key > /dev/null
    cat > "$dir/env" <<ENV
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3
export AWS_REGION=garage
export COFRE_TEST_BUCKET=cofre-test
ENV
    cat "$dir/env"
    ;;
restart)
    launch
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*) echo "usage: $0 start|stop|restart DIR" >&2; exit 2 ;;
esac
