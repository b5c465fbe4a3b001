#!/bin/sh
# Runs the health check of the current release, as the systemd timer does.
# Usage: host/utils/health.sh [--json] [--offline]
set -eu
root="${CONTAINAI_INSTALL_ROOT:-/opt/containai}"
exec "$root/current/tools/containai-host" check-health --install-root "$root" "$@"
