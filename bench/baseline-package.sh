#!/usr/bin/env bash
# What the seed's scripts/release/package.sh did, with GNU tools, for the
# benchmark to compare against: stage the payload, sha256sum every file,
# tar -czf the payload, hash it, tar -czf the bundle.
#   bench/baseline-package.sh PROJECT_DIR OUT_DIR HOST_BINARY SBOM_FILE
set -euo pipefail
project=$1 out=$2 host_binary=$3 sbom=$4
rm -rf "$out"
stage="$out/stage/payload"
mkdir -p "$stage/tools" "$out/release"
cp -a "$project/host" "$stage/host"
cp "$project/README.md" "$stage/README.md"
cp "$host_binary" "$stage/tools/containai-host"
cp "$sbom" "$stage/sbom.json"
(cd "$stage" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
tar -czf "$out/release/payload.tar.gz" -C "$out/stage" payload
(cd "$out/release" && sha256sum payload.tar.gz > payload.sha256)
tar -czf "$out/release/containai-bench.tar.gz" -C "$out/release" payload.tar.gz payload.sha256
