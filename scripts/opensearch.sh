#!/usr/bin/env bash
# Assembles a runnable OpenSearch node for the tests from Maven Central artifacts
# (no tarball): the server's jars in lib/, the transport-netty4 module (HTTP and
# transport layers) in modules/, and the config templates under
# test/backends/opensearch/. Idempotent: a stamp of the inputs' hash skips the
# work when nothing changed. Prints the node's home directory.
#   OPENSEARCH_HOME_ROOT  where to assemble (default /var/cache/packetbeat-ebpf)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.19.6
SRC=test/backends/opensearch
ROOT=${OPENSEARCH_HOME_ROOT:-/var/cache/packetbeat-ebpf}
HOME_DIR=$ROOT/opensearch-$VERSION
M2=$ROOT/m2

inputs_hash() {
  cat "$0" "$SRC/pom.xml" "$SRC/transport-netty4/pom.xml" "$SRC"/config/* | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)
if [ -f "$HOME_DIR/.assembled" ] && [ "$(cat "$HOME_DIR/.assembled")" = "$hash" ]; then
  echo "$HOME_DIR"
  exit 0
fi

for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "opensearch.sh: $tool is required (Java 17 and Maven)" >&2; exit 1; }
done

mkdir -p "$ROOT"
tmp=$(mktemp -d "$ROOT/.opensearch-$VERSION.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "opensearch.sh: assembling OpenSearch $VERSION from Maven Central into $HOME_DIR" >&2

# jars: the server and its dependencies; the module and netty
mvn_copy() { # pom, output directory
  mvn -q -B -f "$1" -Dmaven.repo.local="$M2" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$2" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2
}
mvn_copy "$SRC/pom.xml" "$tmp/lib"
module=$tmp/modules/transport-netty4
mvn_copy "$SRC/transport-netty4/pom.xml" "$module"

# the module's descriptor (the Maven jar carries only classes) and its permissions
cat >"$module/plugin-descriptor.properties" <<PROPS
description=Netty 4 based transport and HTTP layers
version=$VERSION
name=transport-netty4
classname=org.opensearch.transport.Netty4Plugin
java.version=11
opensearch.version=$VERSION
extended.plugins=
has.native.controller=false
PROPS
cp "$SRC/config/netty4-plugin-security.policy" "$module/plugin-security.policy"

# the node expects these to exist (bin/ stays empty: the tests launch java themselves)
mkdir -p "$tmp/plugins" "$tmp/config" "$tmp/bin"
cp "$SRC/config/log4j2.properties" "$tmp/config/"
echo "$hash" >"$tmp/.assembled"

rm -rf "$HOME_DIR"
chmod 755 "$tmp"
mv "$tmp" "$HOME_DIR"
trap - EXIT
echo "$HOME_DIR"
