#!/usr/bin/env bash
# Installs the real services the tests run against (Debian packages), once.
# Nothing is started here: each test starts what it needs on loopback or a temp
# socket through test/helpers/services.ts, and stops it afterwards.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v podman >/dev/null 2>&1 || need+=(podman)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The registry tests: skopeo inspects and copies what publish pushed; openssl makes the token server's key.
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test services missing (${need[*]}) and not root: install them with apt-get" >&2
    exit 1
  fi
  echo "installing test services: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
