#!/usr/bin/env bash
# What the seed's scripts/release/package.sh did, with GNU tools, for the same release
# package now makes, for the benchmark to compare against: stage the payload (no agent
# inside any more), sha256sum every file, tar -czf the payload, hash it, copy the two
# agents beside it (as the seed copied its binary into tools/) and sha256sum them,
# tar -czf the bundle. release.json has no GNU-tools equivalent and is left out, which
# only flatters the baseline.
#   bench/baseline-package.sh PROJECT_DIR OUT_DIR AGENT_DIR SBOM_FILE
set -euo pipefail
project=$1 out=$2 agent_dir=$3 sbom=$4
rm -rf "$out"
stage="$out/stage/payload"
release="$out/release"
mkdir -p "$stage" "$release"
cp -a "$project/host" "$stage/host"
cp "$project/README.md" "$stage/README.md"
cp "$sbom" "$stage/sbom.json"
(cd "$stage" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
tar -czf "$release/payload.tar.gz" -C "$out/stage" payload
cp "$stage/SHA256SUMS" "$release/SHA256SUMS"
(cd "$release" && sha256sum payload.tar.gz > payload.sha256)
cp "$agent_dir/containai-host-linux-x64" "$agent_dir/containai-host-linux-arm64" "$release/"
(cd "$release" && sha256sum containai-host-linux-arm64 containai-host-linux-x64 > containai-host.SHA256SUMS)
tar -czf "$release/containai-bench.tar.gz" -C "$release" SHA256SUMS payload.sha256 payload.tar.gz
