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
# The arm64 agent is run under qemu-user with the arm64 C library (test/e2e/package.test.ts).
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
# test/unit/trust-status.test.ts makes a key certificate with openssl req -x509.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# A static busybox is the whole of the crash-looping image the gate's containers probe is tested with.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
# promtool checks the metrics file check-health writes.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# Tools some tests call directly: script (a pseudo-terminal for the colour test), git (the rehearsal archives HEAD).
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v git >/dev/null 2>&1 || need+=(git)
# The registry tests: skopeo inspects and copies what publish pushed.
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test services missing (${need[*]}) and not root: install them with apt-get" >&2
    exit 1
  fi
  echo "installing test services: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
