#!/bin/sh
# Shows which release is current and which is previous.
# Usage: host/utils/status.sh [--json]
set -eu
root="${CONTAINAI_INSTALL_ROOT:-/opt/containai}"
exec "$root/current/tools/containai-host" status --install-root "$root" "$@"
