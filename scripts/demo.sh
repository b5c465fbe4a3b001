#!/usr/bin/env bash
# The main job, end to end on this machine: build both binaries, stamp a dev
# profile, package this repo's host/ tree, sign it with a throwaway key, install
# it into .demo/root with containai-host, then show status and health.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
export NO_COLOR=1
# check-health's verification stamp stays in the demo's folder, not /var/lib/containai.
export CONTAINAI_STATE_DIR="$PWD/.demo/state"

version="v0.0.0-demo"
demo="$PWD/.demo"
rm -rf "$demo"
mkdir -p "$demo"

echo "== build both binaries"
bun scripts/build.ts

echo "== stamp host/profile.env (dev) and package host/ as $version"
dist/containai-build profile --profile dev --image-prefix containai-dev --image-tag devlocal
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)"
export SOURCE_DATE_EPOCH
dist/containai-build package --version "$version" --out "$demo/dist" --skip-sbom

echo "== sign the payload with a throwaway Ed25519 key (CI uses GitHub's attestation instead)"
openssl genpkey -algorithm ed25519 -out "$demo/signing.key" 2>/dev/null
openssl pkey -in "$demo/signing.key" -pubout -out "$demo/signing.pub"
# The host pins the public key in its trust dir, as an operator would in /etc/containai/trust.
mkdir -p -m 0755 "$demo/trust" && cp "$demo/signing.pub" "$demo/trust/release.pub"
dist/containai-build sign --version "$version" --out "$demo/dist" --key "$demo/signing.key"

echo "== install into $demo/root, trusting only that key"
dist/containai-host install --version "$version" --asset-dir "$demo/dist/$version" \
  --install-root "$demo/root" --allow-nonroot --trust-dir "$demo/trust" --no-public-good

echo "== status"
dist/containai-host status --install-root "$demo/root"

# A Docker engine of the demo's own, on a socket in .demo/, when dockerd is installed and we are root
# (npm test installs it); otherwise the engine check reports what is missing.
if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then
  echo "== start a dockerd on $demo/docker.sock for the health check"
  dockerd --host "unix://$demo/docker.sock" --data-root "$demo/docker" --exec-root "$demo/docker-exec" \
    --pidfile "$demo/docker.pid" --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    >"$demo/dockerd.log" 2>&1 &
  dockerd_pid=$!
  trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null' EXIT
  for _ in $(seq 1 300); do [ -S "$demo/docker.sock" ] && break; sleep 0.1; done
  export DOCKER_HOST="unix://$demo/docker.sock"
fi

echo "== health (offline: no registry check)"
if dist/containai-host check-health --install-root "$demo/root" --offline --trust-dir "$demo/trust"; then
  echo "healthy"
else
  echo "unhealthy: see the failing checks above (without a Docker engine the engine check fails by design)"
fi
