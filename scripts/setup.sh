#!/usr/bin/env bash
# Installs what packetbeat-ebpf needs on Debian/Ubuntu, builds it, and puts
# `packetbeat-ebpf` on the PATH. Idempotent: re-running only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(clang llvm libelf-dev zlib1g-dev pkg-config make g++ python3)
# libbpf >= 1.0; where the distribution's is older (Ubuntu 22.04) one built from source wins
pkg-config --atleast-version=1.0 libbpf 2>/dev/null || PACKAGES+=(libbpf-dev)
# bpftool is its own package on Debian 12; Ubuntu ships it in linux-tools
if apt-cache show bpftool >/dev/null 2>&1; then PACKAGES+=(bpftool); fi
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "setup: Node.js 20 or later is required (node not found)" >&2; exit 1; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build

if [ "$(id -u)" = 0 ] && [ -d /usr/local/bin ]; then
  ln -sf "$PWD/bin/packetbeat-ebpf" /usr/local/bin/packetbeat-ebpf
fi
echo "setup: built; run \`sudo packetbeat-ebpf run\`"
