#!/usr/bin/env bash
# The QEMU kernel matrix's host side: fetches Debian kernels (downloaded and
# unpacked, never installed on the host), builds an initramfs holding busybox,
# Node, the built agent, nginx, curl, Redis and bpftool, and boots it under TCG.
#
#   vm.sh deps                 install qemu-system-x86 and busybox-static when missing
#   vm.sh kernel SUITE         fetch SUITE's kernel into the cache; prints its directory
#   vm.sh initramfs [OUT]      build the initramfs from the built tree; prints its path
#   vm.sh boot SUITE [INITRD]  boot SUITE's kernel; the serial console goes to stdout
#   vm.sh run SUITE            all four for one kernel
#
# Environment: PBE_VM_CACHE (default /var/cache/packetbeat-ebpf/vm), PBE_VM_MIRROR
# (default: the host's Debian mirror), PBE_VM_REFRESH=1 (fetch the suite's current
# kernel again), PBE_VM_RUNS=a,b (only these runs of test/vm/matrix.ts in the guest),
# PBE_VM_BOOT_TIMEOUT (seconds, default 600).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${PBE_VM_CACHE:-/var/cache/packetbeat-ebpf/vm}
BOOT_TIMEOUT_S=${PBE_VM_BOOT_TIMEOUT:-600}
APT_TIMEOUT_S=600
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# kernel options reported in the kernel's info file (and by the test)
KERNEL_OPTIONS=(BPF_SYSCALL DEBUG_INFO_BTF KPROBES KPROBE_EVENTS FUNCTION_TRACER DYNAMIC_FTRACE_WITH_DIRECT_CALLS FPROBE FTRACE_SYSCALLS)
# programs the guest runs besides busybox (their shared libraries come along)
GUEST_PROGRAMS=(node nginx curl redis-server redis-cli bpftool)

log() { echo "vm: $*" >&2; }
die() { echo "vm: $*" >&2; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Serialise cache writers (kernel fetches, layer builds) between concurrent runs.
lock_cache() {
  # held once per script: subshells share the open lock file
  [ -z "${CACHE_LOCKED:-}" ] || return 0
  CACHE_LOCKED=1
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.lock"
  flock -w 900 8 || die "timed out waiting for $CACHE/.lock"
}

# A statically linked busybox: busybox-static's, or (when the dynamic busybox package is
# installed, which busybox-static would replace) one unpacked from its package into the cache.
busybox_path() {
  if installed busybox-static; then echo /bin/busybox; return; fi
  local d="$CACHE/busybox-static"
  if [ ! -x "$d/bin/busybox" ]; then
    local tmp
    tmp=$(mktemp -d "$CACHE/tmp.busybox.XXXXXX")
    local sandbox=()
    [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$tmp" && timeout "$APT_TIMEOUT_S" apt-get -q "${sandbox[@]}" download busybox-static) >&2
    dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/root"
    rm -rf "$d" && mv "$tmp/root" "$d" && rm -rf "$tmp"
  fi
  echo "$d/bin/busybox"
}

cmd_deps() {
  local missing=() p
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  installed busybox-static || installed busybox || missing+=(busybox-static)
  if ((${#missing[@]} > 0)); then
    [ "$(id -u)" = 0 ] || die "needs ${missing[*]} (apt-get install ${missing[*]}, as root)"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout "$APT_TIMEOUT_S" apt-get update -qq >&2
    timeout "$APT_TIMEOUT_S" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  for p in "${GUEST_PROGRAMS[@]}"; do
    command -v "$p" >/dev/null || die "$p is not installed (test/run.sh installs nginx-light, curl and redis-server; scripts/setup.sh bpftool)"
  done
  lock_cache
  busybox_path >/dev/null
}

# The host's Debian mirror (the first non-security URI of its apt sources), else deb.debian.org.
mirror() {
  if [ -n "${PBE_VM_MIRROR:-}" ]; then echo "$PBE_VM_MIRROR"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/{for(i=2;i<=NF;i++) print $i}' |
    grep -v security | grep -E '/debian/?$' | head -n1 || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) print $i}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# apt with a private sources list and state: the host's apt configuration is not touched.
private_apt() {
  local suite=$1 tool=$2; shift 2
  local a="$CACHE/apt/$suite"
  local sandbox=()
  # the download lands in a private temporary directory that apt's _apt user cannot write
  [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
  timeout "$APT_TIMEOUT_S" "$tool" -q -o Dir::Etc::sourcelist="$a/sources.list" -o Dir::Etc::sourceparts="$a/empty.d" \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o Dir::State::status="$a/status" \
    -o Dir::Etc::preferences="$a/empty.d/none" -o Dir::Etc::preferencesparts="$a/empty.d" "${sandbox[@]}" "$@"
}

cmd_kernel() {
  local suite=${1:?suite, e.g. bookworm}
  [[ $suite =~ ^[a-z]+$ ]] || die "bad suite name: $suite"
  local d="$CACHE/kernels/$suite"
  if [ -f "$d/info" ] && [ -z "${PBE_VM_REFRESH:-}" ]; then echo "$d"; return; fi
  lock_cache
  if [ -f "$d/info" ] && [ -z "${PBE_VM_REFRESH:-}" ]; then echo "$d"; return; fi
  local a="$CACHE/apt/$suite"
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/empty.d"
  echo "deb [signed-by=$KEYRING] $(mirror) $suite main" >"$a/sources.list"
  : >"$a/status"
  log "$suite: apt-get update ($(mirror))"
  private_apt "$suite" apt-get update --error-on=any >&2 || die "$suite: apt-get update from $(mirror) failed"
  local pkg
  pkg=$(private_apt "$suite" apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || true
  [ -n "$pkg" ] || die "$suite: no linux-image-<version> package that linux-image-amd64 depends on in $(mirror) $suite"
  local tmp
  tmp=$(mktemp -d "$CACHE/tmp.kernel.XXXXXX")
  log "$suite: apt-get download $pkg"
  (cd "$tmp" && private_apt "$suite" apt-get download "$pkg") >&2 || die "$suite: download of $pkg failed"
  local deb
  deb=$(ls "$tmp"/*.deb)
  # only /boot (vmlinuz, config) is needed: the modules stay packed
  mkdir "$tmp/root"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" --wildcards './boot/*'
  mkdir "$tmp/k"
  mv "$tmp"/root/boot/vmlinuz-* "$tmp/k/vmlinuz"
  mv "$tmp"/root/boot/config-* "$tmp/k/config"
  {
    echo "suite=$suite"
    echo "package=$pkg"
    echo "version=$(dpkg-deb -f "$deb" Version)"
    echo "release=${pkg#linux-image-}"
    local o v
    for o in "${KERNEL_OPTIONS[@]}"; do
      v=$(grep -E "^CONFIG_$o=" "$tmp/k/config" | cut -d= -f2 || true)
      echo "config_$o=${v:-n}"
    done
  } >"$tmp/k/info"
  rm -rf "$d" && mkdir -p "$(dirname "$d")" && mv "$tmp/k" "$d"
  # the private apt state is only needed for the next fetch, which starts with an update
  rm -rf "$tmp" "$a"
  log "$suite: $(grep -E '^(package|config_DEBUG_INFO_BTF)=' "$d/info" | tr '\n' ' ')"
  echo "$d"
}

# An empty staging root with the merged-/usr layout: /lib and /lib64 lead into /usr.
stage_root() {
  mkdir -p "$1/usr/lib" "$1/usr/lib64"
  ln -s usr/lib "$1/lib"
  ln -s usr/lib64 "$1/lib64"
}

# Copy files to the same path under a staging root, following symlinks.
stage_file() {
  local root=$1 f=$2
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
}

# Every shared library ldd resolves for the given programs (the dynamic loader included).
shared_libs() {
  local f
  for f in "$@"; do ldd "$f" | awk '/=> \//{print $3} /^\s*\//{print $1}'; done | sort -u
}

# The shared libraries of programs, staged at their host paths.
stage_libs() {
  local root=$1 lib
  shift
  for lib in $(shared_libs "$@"); do
    [ -e "$root$lib" ] || stage_file "$root" "$lib"
  done
}

# newc cpio of a directory, root-owned, zero-padded to 512 bytes (segments are concatenated).
pack_cpio() {
  local dir=$1 out=$2 busybox
  busybox=$(busybox_path)
  (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) >"$out"
  truncate -s %512 "$out"
}

# The tools layer: busybox, Node, nginx, curl, redis and their libraries. Rebuilt only when
# one of them (or this function) changes.
build_tools_layer() {
  local stage=$1 busybox=$2 p f
  stage_root "$stage"
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/tmp}
  cp "$busybox" "$stage/bin/busybox"
  for p in $("$busybox" --list); do
    [ "$p" = busybox ] || ln -s busybox "$stage/bin/$p"
  done
  local paths=()
  for p in "${GUEST_PROGRAMS[@]}"; do paths+=("$(command -v "$p")"); done
  for p in "${paths[@]}"; do stage_file "$stage" "$p"; done
  stage_libs "$stage" "${paths[@]}"
  # Node is shipped with its symbols: 12 MB less to unpack at every boot
  strip "$stage$(command -v node)"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$stage/etc/hosts"
  printf 'passwd: files\ngroup: files\nhosts: files\n' >"$stage/etc/nsswitch.conf"
  chmod 1777 "$stage/tmp" "$stage/var/tmp"
  # the console the kernel opens for /init (devtmpfs is mounted only later)
  mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
}

# Fingerprint of what the tools layer is made of.
tools_layer_key() {
  local busybox=$1 p programs=()
  for p in "${GUEST_PROGRAMS[@]}"; do programs+=("$(command -v "$p")"); done
  {
    declare -f build_tools_layer stage_root shared_libs stage_libs stage_file pack_cpio
    stat -L -c '%n %s %Y' "$busybox" "${programs[@]}" $(shared_libs "${programs[@]}")
  } | sha256sum | cut -c1-16
}

# The agent layer: what `npm run build` made (no dev dependencies), the addon's libraries,
# and /init. Rebuilt every time (a second or two).
build_agent_layer() {
  local stage=$1 dir="$1/opt/packetbeat-ebpf" m
  [ -f "$REPO/dist/src/cli/main.js" ] || die "the agent is not built (npm run build)"
  [ -f "$REPO/dist/test/vm/guest-runner.js" ] || die "the VM guest runner is not built (npm run build)"
  compgen -G "$REPO/addon/build/Release/*.node" >/dev/null || die "the addon is not built (npm run build)"
  stage_root "$stage"
  mkdir -p "$dir/dist/test" "$dir/addon/build/Release"
  cp -a "$REPO/package.json" "$REPO/bin" "$dir/"
  cp -a "$REPO/dist/src" "$dir/dist/"
  cp -a "$REPO/dist/test/vm" "$dir/dist/test/"
  cp -a "$REPO"/addon/build/Release/*.node "$dir/addon/build/Release/"
  # runtime dependencies only: package-lock.json marks dev ones
  for m in $(node -e '
    const lock = require(process.argv[1]);
    for (const [p, e] of Object.entries(lock.packages ?? {}))
      if (p.startsWith("node_modules/") && !e.dev && !e.devOptional) console.log(p);
  ' "$REPO/package-lock.json"); do
    [ -d "$REPO/$m" ] || continue  # optional dependency not installed on this platform
    mkdir -p "$dir/$(dirname "$m")"
    cp -a "$REPO/$m" "$dir/$(dirname "$m")/"
  done
  # the addon's libraries that the tools layer does not already hold (libbpf, libelf, libz)
  local programs=() p lib
  for p in "${GUEST_PROGRAMS[@]}"; do programs+=("$(command -v "$p")"); done
  for lib in $(comm -23 <(shared_libs "$REPO"/addon/build/Release/*.node) <(shared_libs "${programs[@]}")); do
    stage_file "$stage" "$lib"
  done
  install -m 755 "$REPO/test/vm/init.sh" "$stage/init"
}

cmd_initramfs() {
  local out=${1:-$CACHE/initramfs.img}
  lock_cache
  local busybox key tools
  busybox=$(busybox_path)
  key=$(tools_layer_key "$busybox")
  tools="$CACHE/layers/tools-$key.cpio"
  if [ ! -f "$tools" ]; then
    log "building the tools layer ($key)"
    local tmp
    tmp=$(mktemp -d "$CACHE/tmp.tools.XXXXXX")
    build_tools_layer "$tmp/root" "$busybox"
    pack_cpio "$tmp/root" "$tmp/layer.cpio"
    mkdir -p "$CACHE/layers"
    find "$CACHE/layers" -name 'tools-*.cpio' -delete
    mv "$tmp/layer.cpio" "$tools"
    rm -rf "$tmp"
  fi
  local tmp
  tmp=$(mktemp -d "$CACHE/tmp.agent.XXXXXX")
  build_agent_layer "$tmp/root"
  pack_cpio "$tmp/root" "$tmp/agent.cpio"
  mkdir -p "$(dirname "$out")"
  cat "$tools" "$tmp/agent.cpio" >"$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  log "initramfs $out: $(du -h "$out" | cut -f1) (tools layer $(du -h "$tools" | cut -f1))"
  echo "$out"
}

cmd_boot() {
  local suite=${1:?suite, e.g. bookworm} initrd=${2:-$CACHE/initramfs.img}
  local k="$CACHE/kernels/$suite"
  [ -f "$k/vmlinuz" ] || die "no kernel for $suite in the cache (vm.sh kernel $suite)"
  [ -f "$initrd" ] || die "no initramfs at $initrd (vm.sh initramfs)"
  local append="console=ttyS0 panic=-1 loglevel=4"
  [ -z "${PBE_VM_RUNS:-}" ] || append+=" pbe_runs=$PBE_VM_RUNS"
  # the guest powers itself off; panic=-1 with -no-reboot and the timeout are the fallbacks
  timeout --kill-after=10 "$BOOT_TIMEOUT_S" qemu-system-x86_64 -accel tcg -cpu max -m 2G -smp 2 \
    -nographic -no-reboot -kernel "$k/vmlinuz" -initrd "$initrd" -append "$append" </dev/null
}

cmd_run() {
  local suite=${1:?suite, e.g. bookworm}
  cmd_deps
  cmd_kernel "$suite" >/dev/null
  local initrd
  initrd=$(cmd_initramfs)
  # not held while the VM runs (qemu would inherit it)
  exec 8>&-
  cmd_boot "$suite" "$initrd"
}

case "${1:-}" in
  deps) cmd_deps ;;
  kernel) cmd_kernel "${2:-}" ;;
  initramfs) cmd_initramfs "${2:-}" ;;
  boot) cmd_boot "${2:-}" "${3:-}" ;;
  run) cmd_run "${2:-}" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
