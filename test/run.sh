#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds, runs the
# unit tests and (as root, on a kernel that can) the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# servers and clients the integration tests start
scripts/setup.sh nginx-light curl postgresql mariadb-server redis-server openjdk-17-jre-headless maven iproute2
# an OpenSearch node assembled from Maven Central jars (cached under /var/cache/packetbeat-ebpf)
scripts/opensearch.sh >/dev/null

# the OpenTelemetry Collector the OTLP tests export to (built once from the Go module proxy, cached)
scripts/otelcol.sh >/dev/null

mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true

mapfile -t unit < <(find dist/test/unit -name '*.test.js' | sort)
mapfile -t integration < <(find dist/test/integration -name '*.test.js' | sort)
# the QEMU kernel matrix (test/vm/vm.sh installs qemu-system-x86 and busybox-static itself)
mapfile -t vm < <(find dist/test/vm -name '*.test.js' | sort)
# one runner process, tests of a file in sequence (integration tests share the kernel);
# one run at a time on this machine (the tests check what BPF programs are attached)
exec 9>/run/lock/packetbeat-ebpf-tests.lock
flock 9
node --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${integration[@]}" "${vm[@]}"
