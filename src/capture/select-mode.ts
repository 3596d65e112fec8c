import * as fs from 'node:fs';
import { CaptureStartError, createEbpfSource, hasBpfCapabilities, type EbpfSourceOptions, type HookSet } from './ebpf-source';

export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';

/** What the user asks for (`run --mode`). */
export type RequestedMode = 'auto' | 'syscall' | 'kprobe' | 'packet';
/** Which hooks the kprobe mode uses (`--kprobe-variant`). */
export type KprobeVariant = 'auto' | 'fentry' | 'kprobe';

export const REQUESTED_MODES: readonly RequestedMode[] = ['auto', 'syscall', 'kprobe', 'packet'];
export const KPROBE_VARIANTS: readonly KprobeVariant[] = ['auto', 'fentry', 'kprobe'];

/**
 * Hook sets to try, best first: fentry/fexit (a direct call from a BPF
 * trampoline), then kprobes, then syscall tracepoints (which put every
 * syscall of every task on the tracing slow path).
 */
export function hookCandidates(mode: Exclude<RequestedMode, 'packet'>, variant: KprobeVariant): HookSet[] {
  const kprobe: HookSet[] = variant === 'auto' ? ['fentry', 'kprobe'] : [variant];
  if (mode === 'syscall') return ['syscall'];
  if (mode === 'kprobe') return kprobe;
  return [...kprobe, 'syscall'];
}

export const KPROBE_PMU = '/sys/bus/event_source/devices/kprobe';
const TRACEFS_DIRS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/**
 * Why kprobes cannot attach on this kernel, known without loading anything:
 * libbpf attaches them through the kprobe PMU, or else through tracefs's
 * kprobe_events; with neither there is nothing to attach to. Undefined when
 * they may attach (or when tracefs is not mounted to tell).
 */
export function kprobesMissing(pmu = KPROBE_PMU, tracefsDirs = TRACEFS_DIRS): string | undefined {
  if (fs.existsSync(pmu)) return undefined;
  const mounted = tracefsDirs.filter((d) => fs.existsSync(`${d}/events`));
  if (mounted.length === 0 || mounted.some((d) => fs.existsSync(`${d}/kprobe_events`))) return undefined;
  return 'this kernel lacks kprobes (CONFIG_KPROBES, CONFIG_KPROBE_EVENTS): no kprobe PMU, no kprobe_events in tracefs';
}

/** What the kernel offers, looked up before anything is loaded. */
export interface KernelFacts {
  btfPath: string;
  kprobesMissing: () => string | undefined;
}

const HOST_FACTS: KernelFacts = { btfPath: KERNEL_BTF, kprobesMissing: () => kprobesMissing() };

export interface HookAttempt {
  hooks: HookSet;
  error: string;
  code?: string;
}

export type KernelSource = ReturnType<typeof createEbpfSource>;

/**
 * Open the first hook set of `candidates` that loads and attaches. Each failed
 * attempt is closed before the next (nothing stays attached); when all fail the
 * error names what each needed from the kernel.
 */
export function openKernelSource(
  base: Omit<EbpfSourceOptions, 'hooks'>,
  candidates: HookSet[],
  open: (o: EbpfSourceOptions) => KernelSource = createEbpfSource,
  { btfPath, kprobesMissing: whyNoKprobes }: KernelFacts = HOST_FACTS,
): { source: KernelSource; attempts: HookAttempt[] } {
  if (!fs.existsSync(btfPath)) {
    // CO-RE relocations need the kernel's own type information
    throw new CaptureStartError(
      `this kernel has no BTF (${btfPath} is missing: built without CONFIG_DEBUG_INFO_BTF), which the syscall and kprobe modes need to find kernel structures`,
      'ENOBTF',
    );
  }
  const attempts: HookAttempt[] = [];
  for (const hooks of candidates) {
    // loading the kprobe programs only to see them fail to attach costs a second of verifier time
    const missing = hooks === 'kprobe' ? whyNoKprobes() : undefined;
    if (missing) {
      attempts.push({ hooks, error: missing, code: 'ENOENT' });
      continue;
    }
    try {
      return { source: open({ ...base, hooks }), attempts };
    } catch (err) {
      if (!(err instanceof CaptureStartError)) throw err;
      attempts.push({ hooks, error: err.message, code: err.code });
      // without privileges every hook set fails the same way: say that once
      if (!hasBpfCapabilities() && (err.code === 'EPERM' || err.code === 'EACCES')) throw err;
    }
  }
  const what = candidates.includes('syscall')
    ? candidates.length === 1
      ? 'the syscall mode cannot run'
      : 'no capture mode can run'
    : `the kprobe mode (${candidates.join(' or ')} hooks) cannot run`;
  throw new CaptureStartError(
    `${what} on this kernel:\n${attempts.map((a) => `  ${a.hooks}: ${a.error}`).join('\n')}`,
    attempts[attempts.length - 1]?.code,
  );
}
