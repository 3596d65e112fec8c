import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { loadBinding, type KernelProbe } from '../capture/addon';
import { CaptureStartError, createEbpfSource, type HookSet } from '../capture/ebpf-source';
import { hookCandidates } from '../capture/select-mode';

export const TRACEFS_PATHS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
const BTF_PATH = '/sys/kernel/btf/vmlinux';

export type CaptureMode = 'syscall' | 'kprobe' | 'packet';

/** One hook set tried for real: loaded, attached, detached. */
export interface HookTrial {
  hooks: HookSet;
  attaches: boolean;
  detail: string;
}

export interface Feature {
  name: string;
  available: boolean;
  detail: string;
}

export interface CheckReport {
  kernel: string;
  root: boolean;
  features: Feature[];
  /** Each hook set loaded and attached for real (root only). */
  trials: HookTrial[];
  /** The mode `run` uses, or undefined when none can run. */
  mode?: CaptureMode;
  /** The hooks of that mode. */
  hooks?: HookSet;
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

/** Load and attach the capture with each hook set, then detach: what `run --mode auto` would find. */
export function tryHookSets(sets: HookSet[] = ['fentry', 'kprobe', 'syscall']): HookTrial[] {
  return sets.map((hooks) => {
    try {
      const source = createEbpfSource({
        hooks,
        ports: [[1, 0]],
        pids: [],
        maxPayload: 64,
        ringBytes: 4096 * 16,
        wakeupBytes: 0,
        drainIntervalMs: 1000,
      });
      const degraded = source.degraded.map((f) => `${f.program} (${f.code})`);
      source.close();
      return { hooks, attaches: true, detail: degraded.length > 0 ? `attaches; optional hooks missing: ${degraded.join(', ')}` : 'attaches' };
    } catch (err) {
      if (!(err instanceof CaptureStartError)) throw err;
      return { hooks, attaches: false, detail: err.message };
    }
  });
}

/** What the running kernel supports, and the capture mode `run` would use. */
export function checkKernel(
  probe: () => KernelProbe = () => loadBinding().probe(),
  trial: (sets: HookSet[]) => HookTrial[] = tryHookSets,
): CheckReport {
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
  const trials = root && p && btf ? trial(hookCandidates('auto', 'auto')) : [];
  const attaches = (h: HookSet) => trials.find((t) => t.hooks === h)?.attaches === true;
  // a probe that loads a trivial program is not proof: the trial attach decides
  for (const [name, hooks] of [['fentry/fexit', 'fentry'], ['kprobes', 'kprobe'], ['syscall tracepoints', 'syscall']] as const) {
    const t = trials.find((x) => x.hooks === hooks);
    const f = features.find((x) => x.name === name);
    if (t && f) {
      f.available = t.attaches;
      f.detail = t.attaches ? `${f.detail}; the capture attaches` : t.detail;
    }
  }
  let mode: CaptureMode | undefined;
  let hooks: HookSet | undefined;
  let reason: string;
  const best = trials.find((t) => t.attaches);
  if (best) {
    hooks = best.hooks;
    mode = best.hooks === 'syscall' ? 'syscall' : 'kprobe';
    const failed = trials.filter((t) => !t.attaches).map((t) => t.hooks);
    reason =
      best.hooks === 'fentry'
        ? 'fentry/fexit attach: the cheapest hooks'
        : `${best.hooks === 'kprobe' ? 'kprobes attach' : 'syscall tracepoints attach'}${failed.length > 0 ? ` (${failed.join(' and ')} did not)` : ''}`;
    return { kernel, root, features, trials, mode, hooks, reason };
  }
  if (!p) {
    reason = `cannot probe the kernel: ${probeError ?? 'unknown error'}`;
  } else if (!root && p.tracepoint !== 1) {
    reason = 'not running as root: loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON)';
  } else if (!btf) {
    reason = 'no BTF: the syscall and kprobe modes need /sys/kernel/btf/vmlinux';
  } else if (!ok('ring buffer')) {
    reason = 'the kernel has no BPF ring buffer (needs Linux 5.8 or later)';
  } else if (trials.length > 0) {
    reason = 'no hook set attaches: fentry, kprobes and syscall tracepoints all failed (see above)';
  } else if (!root) {
    mode = ok('fentry/fexit') || ok('kprobes') ? 'kprobe' : ok('syscall tracepoints') ? 'syscall' : undefined;
    reason = 'not running as root: guessed from feature probes, without attaching';
  } else {
    reason = 'no fentry, kprobes or syscall tracepoints';
  }
  return { kernel, root, features, trials, mode, hooks, reason };
}

export function formatCheck(r: CheckReport): string {
  const lines = [`kernel ${r.kernel}${r.root ? '' : ' (not root: some probes may fail)'}`];
  for (const f of r.features) lines.push(`  ${f.available ? 'yes' : 'no '}  ${f.name.padEnd(24)} ${f.detail}`);
  lines.push(
    r.mode ? `capture mode: ${r.mode}${r.hooks && r.mode === 'kprobe' ? ` with ${r.hooks} hooks` : ''} (${r.reason})` : `no capture mode can run: ${r.reason}`,
  );
  return lines.join('\n');
}
