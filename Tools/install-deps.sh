#!/usr/bin/env bash
# Installs the Debian packages Cairn builds and tests with, when any is missing (needs root).
set -euo pipefail
packages=(libzstd-dev liblz4-dev libxxhash-dev libopenjph-dev libsqlite3-dev zlib1g-dev zstd lz4 python3-venv fuse3 libfuse3-dev
          orthanc orthanc-dicomweb ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl
          postgresql-15 postgresql-client-15)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
