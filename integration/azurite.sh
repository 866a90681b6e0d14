#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator, on loopback (blob service only).
#   integration/azurite.sh start DIR   starts it (data in DIR), creates a container, prints `export` lines
#   integration/azurite.sh stop DIR    stops it
# Installed by integration/install-deps.sh (npm package `azurite` into /opt/cofre-test, and
# the Python SDK that creates the container).
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2")
bin=/opt/cofre-test/node_modules/.bin/azurite-blob
case "$cmd" in
start)
    mkdir -p "$dir/data"
    [ -x "$bin" ] || { echo "azurite not installed: run integration/install-deps.sh" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" --silent \
        --skipApiVersionCheck > "$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    container=cofre-test
    # The emulator's well-known development account.
    key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    for _ in $(seq 150); do
        if python3 - "$port" "$container" "$key" <<'PY' 2>/dev/null; then break; fi
import sys
from azure.storage.blob import BlobServiceClient
port, container, key = sys.argv[1:4]
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
BlobServiceClient.from_connection_string(conn).create_container(container)
PY
        sleep 0.2
    done
    cat <<ENV | tee "$dir/env"
export AZURE_STORAGE_USE_EMULATOR=true
export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$port
export AZURE_STORAGE_ACCOUNT=devstoreaccount1
export AZURE_STORAGE_KEY=$key
export COFRE_TEST_BUCKET=$container
ENV
    ;;
stop)
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
