#!/usr/bin/env bash
# Installs the benchmark's peer clients: kcat (Debian) and @confluentinc/kafka-javascript,
# built from source against Debian's -dev libraries (its own install would download a prebuilt
# binary, or zlib/OpenSSL sources, from hosts these machines cannot reach).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkgs=()
command -v kcat >/dev/null || pkgs+=(kcat)
for p in zlib1g-dev libssl-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev g++ make python3; do
  dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
done
if ((${#pkgs[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
if [[ ! -f "$here/confluent-kafka/node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node" ]]; then
  (cd "$here/confluent-kafka" && CKJS_LINKING=dynamic npm install --no-audit --no-fund)
fi
