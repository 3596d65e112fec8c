#!/usr/bin/env bash
# Vagrant provisioning: what test/run.sh cannot install from the distribution
# itself (Node 20, and on Ubuntu 22.04 bpftool and a libbpf >= 1.0). The
# compiler toolchain and the test servers are installed by scripts/setup.sh and
# test/run.sh as on any host.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
NODE_VERSION=20.20.2
LIBBPF_VERSION=1.4.7

apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl xz-utils git make gcc pkg-config libelf-dev zlib1g-dev >/dev/null

# Node 20 from nodejs.org when the distribution's is older
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  curl -fsSL "https://nodejs.org/dist/v${NODE_VERSION}/node-v${NODE_VERSION}-linux-x64.tar.xz" | tar -xJ -C /usr/local --strip-components=1
fi

. /etc/os-release
if [ "$ID" = ubuntu ]; then
  # bpftool lives in linux-tools; libbpf-dev 0.5 lacks what the BPF object uses (ksyscall, BPF_KSYSCALL)
  apt-get install -y -qq --no-install-recommends "linux-tools-$(uname -r)" linux-tools-common clang llvm >/dev/null
  if ! pkg-config --atleast-version=1.0 libbpf 2>/dev/null; then
    tmp=$(mktemp -d)
    git clone -q --depth 1 --branch "v${LIBBPF_VERSION}" https://github.com/libbpf/libbpf "$tmp/libbpf"
    # /usr/local comes first in pkg-config's, the compilers' and ld.so's search paths
    make -s -C "$tmp/libbpf/src" PREFIX=/usr/local LIBDIR=/usr/local/lib install
    ldconfig
    rm -rf "$tmp"
  fi
fi

chown -R vagrant:vagrant /home/vagrant/packetbeat-ebpf
echo "provisioned: node $(node --version), kernel $(uname -r); run: sudo ~/packetbeat-ebpf/test/run.sh"
