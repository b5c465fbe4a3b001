#!/bin/sh
# Shows which release is current and which is previous, with the agent installed on this host.
# Usage: host/utils/status.sh [--json]
set -eu
root="${CONTAINAI_INSTALL_ROOT:-/opt/containai}"
agent="${CONTAINAI_HOST_BIN:-/usr/local/bin/containai-host}"
exec "$agent" status --install-root "$root" "$@"
