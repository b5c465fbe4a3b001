#!/usr/bin/env bash
# What the seed's host/utils/install-package.sh did, with GNU tools: unpack the
# bundle, check payload.sha256, unpack the payload, check SHA256SUMS, switch
# the symlink. The baseline bench/install.ts compares containai-host against.
#   bash bench/baseline-install.sh BUNDLE INSTALL_ROOT VERSION
set -euo pipefail
bundle=$1 root=$2 version=$3
work=$(mktemp -d "$root/.work.XXXXXX")
tar -xzf "$bundle" -C "$work"
(cd "$work" && sha256sum -c --quiet payload.sha256)
mkdir -p "$root/releases/$version"
tar -xzf "$work/payload.tar.gz" -C "$root/releases/$version" --strip-components=1
(cd "$root/releases/$version" && sha256sum -c --quiet SHA256SUMS)
rm -rf "$work"
ln -sfn "releases/$version" "$root/current"
