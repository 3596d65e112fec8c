import type { CaptureEvent } from './events';
import type { KernelCounters, VerdictName } from './layout';

/** Where events come from: the kernel (eBPF), and later AF_PACKET or a pcap file. */
export interface CaptureSink {
  /** One event; its payload is only valid during the call. */
  onEvent(event: CaptureEvent): void;
  /** A batch ended (a point to flush outputs, run timers). */
  onBatchEnd(): void;
}

/** What sched_idle auto watches for (addon/sched-guard.h). */
export interface SchedGuardOptions {
  /** Ring buffer bytes from which the agent goes to normal priority. */
  highBytes: number;
  /** Bytes under which it goes back to SCHED_IDLE, once it stayed there holdMs. */
  lowBytes: number;
  holdMs: number;
  /** The budget for normal priority refills at this share of one CPU (the agent's CPU time)... */
  boostShare: number;
  /** ...up to this many CPU ms. */
  burstMs: number;
}

/** addon/sched-guard.h's figures. */
export interface SchedGuardState {
  /** at normal priority now (the agent fell behind) */
  boosted: boolean;
  /** times it went back to normal priority */
  boosts: number;
  /** ms spent at normal priority */
  boostedMs: number;
  /** times the budget ran out at normal priority (the agent yielded, the kernel dropped what it could not drain) */
  throttles: number;
  /** the budget ran out and the agent has not caught up since (under SCHED_IDLE): it is not raised meanwhile */
  held: boolean;
  /** ms left in the budget for normal priority (CPU ms; a ms there costs one at least) */
  budgetMs: number;
  /** the last errno of sched_setscheduler (0: none) */
  lastErrno: number;
}

export interface CaptureSource {
  readonly mode: string;
  start(sink: CaptureSink): void;
  /**
   * Deliver all that is buffered (at shutdown, before close), for up to
   * budgetMs. Returns how many events the kernel wrote that are left unread
   * (0: emptied; time ran out otherwise).
   */
  flush(budgetMs: number): number;
  counters(): KernelCounters;
  /** Stop delivering events for now (outputs are full); the source buffers or counts losses. */
  pause?(): void;
  resume?(): void;
  /**
   * Decisions about sockets (kernel sources only): track or ignore a socket of an
   * unknown port (content inference), or shadow one whose other end is parsed
   * (its data events then come without payload).
   */
  setVerdicts?(verdicts: Array<[sockId: number, verdict: VerdictName]>): void;
  /**
   * sched_idle auto: the agent's threads under SCHED_IDLE, back to normal
   * priority while the ring buffer holds `highBytes` or more, idle again once
   * it stayed under `lowBytes` for `holdMs` (a watcher thread in the addon).
   * Throws when the ring buffer cannot be watched.
   */
  guardSched?(options: SchedGuardOptions): void;
  /** The watcher's figures (after guardSched). */
  schedGuard?(): SchedGuardState;
  /** Times a drain gave the scheduler a turn under SCHED_IDLE (src/capture/slices.ts). */
  yields?(): number;
  /** Figures of the mode beyond the kernel counters (for the stats line), e.g. packet reassembly. */
  details?(): Record<string, unknown>;
  /** Detach everything. Idempotent. */
  close(): void;
}
