/**
 * A drain's work in slices: under SCHED_IDLE the agent gives the scheduler a
 * turn (sched_yield, addon's yieldIfIdle) after each SLICE_MS of work on a
 * batch. On the VM the benchmarks ran on, a task that wants a CPU where a
 * SCHED_IDLE task runs in user space waits for much of that run, so the
 * traced application's tail latency grows with the length of the agent's runs
 * more than with its CPU (bench/tail-cost, 2026-12-08, pgbench's p99 at 2,000
 * tps over untraced): the capture floor spinning 500 µs under SCHED_IDLE every
 * 5 ms ×1.16, the same in 100 µs pieces with a sched_yield between ×0.98, the
 * same CPU in 2 ms runs ×1.77. The agent with these yields, paired beside
 * pgbench (8 rounds): p99 ×0.917 [0.818, 1.05] (with the type feedback of
 * bin/packetbeat-ebpf too: ×0.883 [0.816, 0.952]). At normal priority
 * yieldIfIdle does nothing (the agent is behind then).
 */

/** Work between two yields. */
export const SLICE_MS = 0.1;
/** The clock is read every this many events (a power of 2): an event costs a few µs. */
const CHECK_EVERY = 4;

export interface Slicer {
  /** A batch starts: its first slice starts now. */
  begin(): void;
  /** An event was handled: yield when the slice is over. */
  step(): void;
  /** Yields made (the calling thread was under SCHED_IDLE). */
  yields(): number;
}

/**
 * `yieldIfIdle` yields when the thread is under SCHED_IDLE and says whether it
 * was; `now` is a clock in ms.
 */
export function createSlicer(yieldIfIdle: () => boolean, sliceMs = SLICE_MS, now: () => number = () => performance.now()): Slicer {
  let start = 0;
  let events = 0;
  let yields = 0;
  return {
    begin() {
      start = now();
      events = 0;
    },
    step() {
      if ((++events & (CHECK_EVERY - 1)) !== 0) return;
      if (now() - start < sliceMs) return;
      if (yieldIfIdle()) yields++;
      start = now();
    },
    yields: () => yields,
  };
}
