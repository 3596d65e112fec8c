#!/bin/sh
# /init of the test VM: mount what the agent needs, bring loopback up, run the
# guest runner (the agent runs of test/vm/matrix.ts), print the kernel's BPF
# complaints, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
# kernel messages would cut through the documents on the console: kept in dmesg instead
dmesg -n 1
ulimit -l unlimited

cd /opt/packetbeat-ebpf
node dist/test/vm/guest-runner.js
echo "@@pbe-vm runner-exit - $?"
# what the kernel said about BPF and anything worse than a warning
dmesg | grep -iE 'bpf|btf|warn|bug|oops|error' | sed 's/^/@@pbe-vm dmesg - /'
echo "@@pbe-vm poweroff -"
# let the UART drain before the machine goes away
sleep 1
poweroff -f
