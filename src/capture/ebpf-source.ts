import * as fs from 'node:fs';
import { loadBinding, type AttachFailure, type CaptureBinding, type NativeCapture, type NativeError } from './addon';
import { decodeBatch } from './events';
import { createSlicer } from './slices';
import { checkLayout, COUNTER_NAMES, Verdict, type KernelCounters } from './layout';
import type { CaptureSink, CaptureSource } from './source';

/**
 * The kernel hooks the data programs use (one BPF object, one set loaded):
 * syscall tracepoints, fentry/fexit or kprobe/kretprobe on the syscall functions.
 */
export type HookSet = 'syscall' | 'fentry' | 'kprobe';

export interface EbpfSourceOptions {
  /** Default 'syscall'. */
  hooks?: HookSet;
  /** Ports of interest → protocol id (the kernel's port filter). */
  ports: Array<[number, number]>;
  pids: number[];
  /** Sample sockets of unknown ports for content inference. */
  infer?: boolean;
  maxPayload: number;
  ringBytes: number;
  wakeupBytes: number;
  drainIntervalMs: number;
  drainMinIntervalMs?: number;
  selfTgid?: number;
  debug?: boolean;
  binding?: CaptureBinding;
  onDecodeError?: (err: Error) => void;
  /** Sees every batch as the addon delivered it (recording). */
  onBatch?: (batch: Buffer) => void;
}

/** Hooks without which no transactions come out: [enter|exit, syscall]. */
const REQUIRED_HOOKS: Array<['enter' | 'exit', string]> = [
  ['enter', 'read'],
  ['exit', 'read'],
  ['enter', 'write'],
  ['exit', 'write'],
  ['exit', 'accept4'],
  ['enter', 'connect'],
  ['exit', 'connect'],
  ['enter', 'close'],
];

/** Program names (bpf/capture.bpf.c's macros) of one hook set. */
export function programName(hooks: HookSet, side: 'enter' | 'exit', syscall: string): string {
  if (hooks === 'syscall') return `handle_${side}_${syscall}`;
  if (hooks === 'fentry') return `${side === 'enter' ? 'fentry' : 'fexit'}_${side}_${syscall}`;
  return `kprobe_${side}_${syscall}`;
}

/** What each hook set needs from the kernel, for error messages. */
export const HOOK_REQUIREMENTS: Record<HookSet, string> = {
  syscall: 'syscall tracepoints (CONFIG_FTRACE_SYSCALLS and tracefs)',
  fentry: 'fentry/fexit BPF trampolines (CONFIG_DEBUG_INFO_BTF, CONFIG_FUNCTION_TRACER, CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)',
  kprobe: 'kprobes (CONFIG_KPROBES, CONFIG_KPROBE_EVENTS)',
};

export class CaptureStartError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly detail?: string,
  ) {
    super(message);
  }
}

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** Whether this process may load tracing BPF programs: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON. */
export function hasBpfCapabilities(status = (() => {
  try {
    return fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
})()): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return process.getuid?.() === 0;
  const caps = BigInt(`0x${m[1]}`);
  const has = (c: number) => (caps >> BigInt(c)) & 1n;
  return has(CAP_SYS_ADMIN) === 1n || (has(CAP_BPF) === 1n && has(CAP_PERFMON) === 1n);
}

/** The verifier's last words in libbpf's log (the line saying why a program was refused). */
export function verifierReason(log: string | undefined): string | undefined {
  if (!log) return undefined;
  const lines = log.split('\n');
  const end = lines.findIndex((l) => l.includes('-- END PROG LOAD LOG --'));
  if (end <= 0) return undefined;
  for (let i = end - 1; i >= 0 && !lines[i].includes('-- BEGIN PROG LOAD LOG --'); i--) {
    const l = lines[i].trim();
    if (l && !/^processed \d+ insns/.test(l) && !/^verification time/.test(l)) return l;
  }
  return undefined;
}

/** Explain an addon error in one sentence a user can act on. */
export function explainNativeError(err: NativeError, hooks: HookSet = 'syscall'): CaptureStartError {
  const code = err.code;
  if (code === 'EPERM' || code === 'EACCES') {
    const verifier = code === 'EACCES' ? verifierReason(err.libbpfLog) : undefined;
    if (verifier && hasBpfCapabilities()) {
      return new CaptureStartError(`${err.message}: the kernel's verifier refused the ${hooks} programs: ${verifier}`, code, err.libbpfLog);
    }
    const hint = hasBpfCapabilities()
      ? `the kernel refused the ${hooks} programs although the agent runs as root (kernel lockdown, or no ${HOOK_REQUIREMENTS[hooks]})`
      : 'loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON); run it with sudo';
    return new CaptureStartError(`${err.message}: ${hint}`, code, err.libbpfLog);
  }
  return new CaptureStartError(err.message, code, err.libbpfLog);
}

/** The kernel capture: the `syscall` mode (tracepoints) or the `kprobe` mode (fentry or kprobes). */
export function createEbpfSource(options: EbpfSourceOptions): CaptureSource & { hooks: HookSet; degraded: AttachFailure[] } {
  const binding = options.binding ?? loadBinding();
  const hooks = options.hooks ?? 'syscall';
  checkLayout(binding.layout);
  let native: NativeCapture;
  let degraded: AttachFailure[] = [];
  try {
    native = new binding.Capture({
      mode: hooks,
      selfTgid: options.selfTgid ?? process.pid,
      maxPayload: options.maxPayload,
      filterPids: options.pids.length > 0 ? 1 : 0,
      allPorts: 0,
      infer: options.infer ? 1 : 0,
      wakeupBytes: options.wakeupBytes,
      ringBytes: options.ringBytes,
      debug: options.debug ?? false,
    });
  } catch (err) {
    throw explainNativeError(err as NativeError, hooks);
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    native.close();
  };
  try {
    native.setPorts(options.ports);
    if (options.pids.length > 0) native.setPids(options.pids);
    const failures = native.attach();
    const required = new Set(REQUIRED_HOOKS.map(([side, name]) => programName(hooks, side, name)));
    const missing = failures.filter((f) => required.has(f.program));
    if (missing.length > 0) {
      throw new CaptureStartError(
        `failed to attach ${missing
          .slice(0, 3)
          .map((f) => `${f.program} (${f.code})`)
          .join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}: this kernel lacks ${HOOK_REQUIREMENTS[hooks]}`,
        missing[0].code,
      );
    }
    degraded = failures;
  } catch (err) {
    close();
    throw err instanceof CaptureStartError ? err : explainNativeError(err as NativeError, hooks);
  }

  // a drain yields the CPU every SLICE_MS of work while under SCHED_IDLE (src/capture/slices.ts)
  const slicer = createSlicer(() => binding.yieldIfIdle());

  const counters = (): KernelCounters => {
    const values = closed ? [] : native.counters();
    return Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, values[i] ?? 0])) as KernelCounters;
  };

  return {
    mode: hooks === 'syscall' ? 'syscall' : 'kprobe',
    hooks,
    degraded,
    start(sink: CaptureSink) {
      native.start((batch) => {
        options.onBatch?.(batch);
        slicer.begin();
        try {
          decodeBatch(batch, (e) => {
            sink.onEvent(e);
            slicer.step();
          });
        } catch (err) {
          options.onDecodeError?.(err as Error);
        }
        sink.onBatchEnd();
      }, options.drainIntervalMs, options.drainMinIntervalMs ?? 1);
    },
    yields: () => slicer.yields(),
    flush(budgetMs) {
      // the kernel counts the events it wrote: those not read are left
      return closed || native.drain(budgetMs) ? 0 : Math.max(0, counters().events - native.recordsRead());
    },
    pause() {
      if (!closed) native.pause();
    },
    resume() {
      if (!closed) native.resume();
    },
    setVerdicts(verdicts) {
      if (!closed && verdicts.length > 0) native.setVerdicts(verdicts.map(([id, verdict]) => [id, Verdict[verdict]]));
    },
    guardSched(options) {
      if (!closed) native.guardSched(options);
    },
    schedGuard: () => native.schedGuard(),
    counters,
    close,
  };
}
