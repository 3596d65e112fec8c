import { loadBinding, type CaptureBinding, type NativeCapture, type NativeError } from './addon';
import { decodeBatch } from './events';
import { checkLayout, COUNTER_NAMES, type KernelCounters } from './layout';
import type { CaptureSink, CaptureSource } from './source';

export interface EbpfSourceOptions {
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

/** Programs without which the syscall mode cannot produce transactions. */
const REQUIRED_PROGRAMS = [
  'handle_enter_read',
  'handle_exit_read',
  'handle_enter_write',
  'handle_exit_write',
  'handle_exit_accept4',
  'handle_enter_connect',
  'handle_exit_connect',
  'handle_enter_close',
];

export class CaptureStartError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** Explain an addon error in one sentence a user can act on. */
export function explainNativeError(err: NativeError): CaptureStartError {
  const code = err.code;
  if (code === 'EPERM' || code === 'EACCES') {
    return new CaptureStartError(
      `${err.message}: loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON); run it with sudo`,
      code,
      err.libbpfLog,
    );
  }
  return new CaptureStartError(err.message, code, err.libbpfLog);
}

/** The `syscall` capture mode: tracepoints on the socket syscalls. */
export function createEbpfSource(options: EbpfSourceOptions): CaptureSource {
  const binding = options.binding ?? loadBinding();
  checkLayout(binding.layout);
  let native: NativeCapture;
  try {
    native = new binding.Capture({
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
    throw explainNativeError(err as NativeError);
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
    const missing = failures.filter((f) => REQUIRED_PROGRAMS.includes(f.program));
    if (missing.length > 0) {
      throw new CaptureStartError(
        `failed to attach ${missing.map((f) => `${f.program} (${f.code})`).join(', ')}: syscall tracepoints are not available on this kernel`,
        missing[0].code,
      );
    }
  } catch (err) {
    close();
    throw err instanceof CaptureStartError ? err : explainNativeError(err as NativeError);
  }

  return {
    mode: 'syscall',
    start(sink: CaptureSink) {
      native.start((batch) => {
        options.onBatch?.(batch);
        try {
          decodeBatch(batch, (e) => sink.onEvent(e));
        } catch (err) {
          options.onDecodeError?.(err as Error);
        }
        sink.onBatchEnd();
      }, options.drainIntervalMs, options.drainMinIntervalMs ?? 1);
    },
    flush() {
      if (!closed) native.drain();
    },
    pause() {
      if (!closed) native.pause();
    },
    resume() {
      if (!closed) native.resume();
    },
    setVerdicts(verdicts) {
      if (!closed && verdicts.length > 0) native.setVerdicts(verdicts.map(([id, track]) => [id, track ? 1 : 2]));
    },
    counters(): KernelCounters {
      const values = closed ? [] : native.counters();
      return Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, values[i] ?? 0])) as KernelCounters;
    },
    close,
  };
}
