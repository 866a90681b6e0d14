#!/usr/bin/env bash
# moto's S3 server on loopback: a second S3 implementation that enforces AWS semantics
# Garage lacks (archive storage classes: GET of a GLACIER object is InvalidObjectState).
#   integration/moto.sh start DIR   starts it, creates a bucket, prints `export` lines
#   integration/moto.sh stop DIR    stops it
# Installed by integration/install-deps.sh (`pip install 'moto[server]'`).
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2")
case "$cmd" in
start)
    mkdir -p "$dir"
    python3 -c "import moto.server" 2>/dev/null || { echo "moto not installed: run integration/install-deps.sh" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m moto.server -H 127.0.0.1 -p "$port" > "$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    bucket=cofre-test
    for _ in $(seq 100); do
        if python3 - "$port" "$bucket" <<'PY' 2>/dev/null; then break; fi
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket=sys.argv[2])
PY
        sleep 0.2
    done
    cat <<ENV | tee "$dir/env"
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export COFRE_TEST_BUCKET=$bucket
ENV
    ;;
stop)
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
