#!/bin/sh
# Runs the health check of the current release, as the systemd timer does, with the
# agent installed on this host (never one from under the install root: see docs/operators.md).
# Usage: host/utils/health.sh [--json] [--offline]
set -eu
root="${CONTAINAI_INSTALL_ROOT:-/opt/containai}"
agent="${CONTAINAI_HOST_BIN:-/usr/local/bin/containai-host}"
exec "$agent" check-health --install-root "$root" "$@"
