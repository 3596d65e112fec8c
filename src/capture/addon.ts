import * as path from 'node:path';
import type { AddonLayout } from './layout';
import type { SchedGuardOptions, SchedGuardState } from './source';

/** Options the native Capture takes (validated and defaulted in TypeScript). */
export interface NativeCaptureOptions {
  /** Which hooks the data programs use: syscall tracepoints, fentry/fexit, or kprobes. */
  mode: 'syscall' | 'fentry' | 'kprobe';
  selfTgid: number;
  maxPayload: number;
  filterPids: number;
  allPorts: number;
  /** 1: sample sockets of unknown ports for content inference. */
  infer: number;
  wakeupBytes: number;
  ringBytes: number;
  debug: boolean;
}

export interface AttachFailure {
  program: string;
  errno: number;
  code: string;
}

/** The native object (addon/capture.cc). */
export interface NativeCapture {
  attach(): AttachFailure[];
  setPorts(entries: Array<[number, number]>): void;
  setPids(pids: number[]): void;
  /** Content-inference decisions: [socket inode, 1 track | 2 ignore]. */
  setVerdicts(verdicts: Array<[number, number]>): void;
  /** Drain every minIntervalMs while events keep coming, backing off to intervalMs when idle. */
  start(onBatch: (batch: Buffer) => void, intervalMs: number, minIntervalMs: number): void;
  /** A turn's worth of what waits; with a budget: all of it, paused or not, for up to budgetMs (true: emptied). */
  drain(): void;
  drain(budgetMs: number): boolean;
  /** Records taken from the ring buffer so far (the kernel counts those it wrote). */
  recordsRead(): number;
  /** Stop / restart draining (backpressure from the outputs). */
  pause(): void;
  resume(): void;
  counters(): number[];
  /** sched_idle auto (addon/sched-guard.h): watch the ring buffer, the threads' policy follows its fill. */
  guardSched(options: SchedGuardOptions): void;
  schedGuard(): SchedGuardState;
  programs(): number[];
  close(): void;
}

/** libbpf's feature probes: 1 supported, 0 not, negative -errno when the probe failed. */
export interface KernelProbe {
  ringbuf: number;
  tracepoint: number;
  rawTracepoint: number;
  kprobeProgram: number;
  tracing: number;
  socketFilter: number;
}

export interface CaptureBinding {
  Capture: new (options: NativeCaptureOptions) => NativeCapture;
  layout: AddonLayout;
  probe(): KernelProbe;
  /** sched_setscheduler(tid, SCHED_IDLE): 0, or the errno it failed with. */
  setSchedIdle(tid: number): number;
  /** Under SCHED_IDLE: sched_yield, and true; otherwise false (addon/sched-guard.h, src/capture/slices.ts). */
  yieldIfIdle(): boolean;
}

/** Errors thrown by the addon carry these. */
export interface NativeError extends Error {
  code?: string;
  errno?: number;
  operation?: string;
  libbpfLog?: string;
}

export const ADDON_PATH = path.resolve(__dirname, '../../../addon/build/Release/pbe_capture.node');

let cached: CaptureBinding | undefined;

/** Load the addon once. The binding is injectable elsewhere (tests pass their own). */
export function loadBinding(): CaptureBinding {
  if (!cached) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(ADDON_PATH) as CaptureBinding;
    } catch (err) {
      throw new Error(`failed to load the native addon at ${ADDON_PATH} (run \`npm run build\`): ${(err as Error).message}`);
    }
  }
  return cached;
}
