import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { loadBinding, type KernelProbe } from '../capture/addon';

export const TRACEFS_PATHS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
const BTF_PATH = '/sys/kernel/btf/vmlinux';

export type CaptureMode = 'syscall' | 'kprobe' | 'packet';

export interface Feature {
  name: string;
  available: boolean;
  detail: string;
}

export interface CheckReport {
  kernel: string;
  root: boolean;
  features: Feature[];
  /** The mode `run` uses, or undefined when none can run. */
  mode?: CaptureMode;
  reason: string;
}

/** The tracefs mount libbpf uses to find tracepoints; mounted when missing (root only). */
export function ensureTracefs(): string | undefined {
  for (const p of TRACEFS_PATHS) if (fs.existsSync(`${p}/events`)) return p;
  try {
    execFileSync('mount', ['-t', 'tracefs', 'tracefs', TRACEFS_PATHS[0]], { stdio: 'ignore' });
    if (fs.existsSync(`${TRACEFS_PATHS[0]}/events`)) return TRACEFS_PATHS[0];
  } catch {
    // not root, or no tracefs in this kernel: reported by the caller
  }
  return undefined;
}

function probeText(v: number | undefined): string {
  if (v === undefined) return 'not probed';
  if (v === 1) return 'loads';
  if (v === 0) return 'refused by the kernel';
  return `probe failed (errno ${-v})`;
}

/** What the running kernel supports, and the capture mode `run` would use. */
export function checkKernel(probe: () => KernelProbe = () => loadBinding().probe()): CheckReport {
  const root = process.getuid?.() === 0;
  const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  let p: KernelProbe | undefined;
  let probeError: string | undefined;
  try {
    p = probe();
  } catch (err) {
    probeError = (err as Error).message;
  }
  const btf = fs.existsSync(BTF_PATH);
  const tracefs = ensureTracefs();
  const syscallTps = tracefs !== undefined && fs.existsSync(`${tracefs}/events/syscalls/sys_enter_read`);
  const kprobePmu = fs.existsSync('/sys/bus/event_source/devices/kprobe');
  const uprobePmu = fs.existsSync('/sys/bus/event_source/devices/uprobe');
  const features: Feature[] = [
    { name: 'btf', available: btf, detail: btf ? BTF_PATH : `${BTF_PATH} is missing (kernel built without CONFIG_DEBUG_INFO_BTF): CO-RE cannot relocate` },
    { name: 'ring buffer', available: p?.ringbuf === 1, detail: probeText(p?.ringbuf) },
    {
      name: 'syscall tracepoints',
      available: p?.tracepoint === 1 && syscallTps,
      detail: !tracefs
        ? root
          ? 'tracefs is not mounted and could not be mounted'
          : 'tracefs is not readable without root'
        : syscallTps ? `${probeText(p?.tracepoint)}; ${tracefs}/events/syscalls` : 'no syscalls/ events (CONFIG_FTRACE_SYSCALLS off)',
    },
    {
      name: 'kprobes',
      available: p?.kprobeProgram === 1 && kprobePmu,
      detail: kprobePmu ? probeText(p?.kprobeProgram) : 'no kprobe PMU (kernel built without CONFIG_KPROBES/KPROBE_EVENTS)',
    },
    { name: 'fentry/fexit', available: p?.tracing === 1, detail: probeText(p?.tracing) },
    { name: 'uprobes', available: uprobePmu, detail: uprobePmu ? 'uprobe PMU present' : 'no uprobe PMU' },
    { name: 'AF_PACKET socket filter', available: p?.socketFilter === 1, detail: probeText(p?.socketFilter) },
  ];
  const ok = (name: string) => features.find((f) => f.name === name)?.available === true;
  let mode: CaptureMode | undefined;
  let reason: string;
  if (!p) {
    reason = `cannot probe the kernel: ${probeError ?? 'unknown error'}`;
  } else if (!root && p.tracepoint !== 1) {
    reason = 'not running as root: loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON)';
  } else if (!btf) {
    reason = 'no BTF: the syscall and kprobe modes need /sys/kernel/btf/vmlinux';
  } else if (!ok('ring buffer')) {
    reason = 'the kernel has no BPF ring buffer (needs Linux 5.8 or later)';
  } else if (ok('syscall tracepoints')) {
    mode = 'syscall';
    reason = ok('fentry/fexit') || ok('kprobes')
      ? 'syscall tracepoints are available (the kprobe mode is not built yet)'
      : 'syscall tracepoints are available; kprobes and fentry are not';
  } else {
    reason = 'no syscall tracepoints, and the kprobe and packet modes are not built yet';
  }
  return { kernel, root, features, mode, reason };
}

export function formatCheck(r: CheckReport): string {
  const lines = [`kernel ${r.kernel}${r.root ? '' : ' (not root: some probes may fail)'}`];
  for (const f of r.features) lines.push(`  ${f.available ? 'yes' : 'no '}  ${f.name.padEnd(24)} ${f.detail}`);
  lines.push(r.mode ? `capture mode: ${r.mode} (${r.reason})` : `no capture mode can run: ${r.reason}`);
  return lines.join('\n');
}
