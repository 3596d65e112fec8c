#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the OTLP tests run (test/backends/otelcol:
# OTLP receiver + file exporter) from the Go module proxy, once per source
# version: /var/cache/packetbeat-ebpf/otelcol-<version>/otelcol. Prints the path.
# Idempotent: a binary built from the same go.mod/go.sum/main.go is reused.
# `--path` prints the binary's path and builds nothing: exit 1 when it is not built (from these sources).
set -euo pipefail
cd "$(dirname "$0")/.."
src=test/backends/otelcol
version=$(sed -n 's/^const version = "\(.*\)"$/\1/p' "$src/main.go")
[ -n "$version" ] || { echo "otelcol: no version in $src/main.go" >&2; exit 1; }
dir=${PBE_CACHE_DIR:-/var/cache/packetbeat-ebpf}/otelcol-$version
stamp=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
if [ "${1:-}" = --path ]; then
  echo "$dir/otelcol"
  if [ -x "$dir/otelcol" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
  echo "otelcol: not built from these sources; run $0" >&2
  exit 1
fi
if [ -x "$dir/otelcol" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$dir/otelcol"
  exit 0
fi
# Go from the PATH, else where the official tarball puts it (CI shells may not read ~/.bashrc)
GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || { echo "otelcol: Go is required to build the test collector (go not found)" >&2; exit 1; }
# Go's caches live under HOME (their default places)
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
mkdir -p "$dir"
start=$(date +%s)
echo "otelcol: building collector $version into $dir (first time: a few minutes)" >&2
# a copy, so the build never rewrites the tracked go.mod/go.sum
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 "$GO" build -trimpath -o "$dir/otelcol.tmp" .) >&2
mv "$dir/otelcol.tmp" "$dir/otelcol"
echo "$stamp" > "$dir/stamp"
echo "otelcol: built in $(( $(date +%s) - start ))s" >&2
echo "$dir/otelcol"
