/**
 * The agent with nothing to capture: its default configuration on a port
 * nobody uses, for --seconds after a --settle, --rounds times. Per round: CPU
 * milliseconds per second (each thread's time on CPU from
 * /proc/PID/task/TID/schedstat, in ns) and wake-ups per second (voluntary
 * context switches), for the main thread (drain timer and pipeline tick), sched_idle
 * auto's watcher (the thread left at normal priority) and the others (V8's and
 * libuv's helpers) together. On a VM each wake-up costs tens of µs whatever
 * the thread then does, so the wake-ups are most of an idle agent's CPU.
 *   node dist/bench/idle.js [--rounds 3] [--seconds 20] [--settle 3] [--no-write]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { threadStates, type ThreadState } from '../test/helpers/threads';
import { arg, machine, r3, report, requireTools, runMain, sleep, summarize, withAgent } from './common';

const PORT = 18340;
const ROUNDS = arg('rounds', 3);
const SECONDS = arg('seconds', 20);
const SETTLE_S = arg('settle', 3);
const SCHED_OTHER = 0;

interface Part {
  cpuMsPerS: number;
  wakeupsPerS: number;
}

interface Round {
  total: Part;
  main: Part;
  watcher: Part | null;
  others: Part;
  threads: number;
}

function part(a: Map<number, ThreadState>, b: Map<number, ThreadState>, tids: number[], seconds: number): Part {
  let cpuNs = 0;
  let wakeups = 0;
  for (const tid of tids) {
    const x = a.get(tid);
    const y = b.get(tid);
    if (!x || !y) continue;
    cpuNs += y.cpuNs - x.cpuNs;
    wakeups += y.voluntarySwitches - x.voluntarySwitches;
  }
  return { cpuMsPerS: r3(cpuNs / 1e6 / seconds), wakeupsPerS: r3(wakeups / seconds) };
}

async function round(dir: string): Promise<Round> {
  const run = await withAgent(['--ports', `http=${PORT}`], dir, async ({ pid }) => {
    await sleep(SETTLE_S * 1000);
    const a = threadStates(pid);
    const from = process.hrtime.bigint();
    await sleep(SECONDS * 1000);
    const b = threadStates(pid);
    const seconds = Number(process.hrtime.bigint() - from) / 1e9;
    const tids = [...b.keys()].filter((t) => a.has(t));
    const watcher = tids.find((t) => t !== pid && b.get(t)!.policy === SCHED_OTHER);
    const others = tids.filter((t) => t !== pid && t !== watcher);
    return {
      total: part(a, b, tids, seconds),
      main: part(a, b, [pid], seconds),
      watcher: watcher === undefined ? null : part(a, b, [watcher], seconds),
      others: part(a, b, others, seconds),
      threads: tids.length,
    };
  });
  if (run.docs.length > 0) throw new Error(`${run.docs.length} documents from an agent with nothing to capture: is something using port ${PORT}?`);
  return run.result;
}

async function main(): Promise<void> {
  requireTools({});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-idle-bench-'));
  const rounds: Round[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const r = await round(dir);
      rounds.push(r);
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: ${r.total.cpuMsPerS} CPU-ms/s, ${r.total.wakeupsPerS} wake-ups/s ` +
          `(main ${r.main.cpuMsPerS} ms/s at ${r.main.wakeupsPerS}/s, watcher ${r.watcher ? `${r.watcher.cpuMsPerS} ms/s at ${r.watcher.wakeupsPerS}/s` : 'none'}, ` +
          `${r.threads - 2} others ${r.others.cpuMsPerS} ms/s)\n`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const of = (f: (r: Round) => number | undefined) => summarize(rounds.map(f).filter((x): x is number => x !== undefined));
  report('idle', {
    machine: machine(),
    load: `none: the default configuration on port ${PORT}, ${SECONDS} s after ${SETTLE_S} s, ${ROUNDS} rounds`,
    cpu_ms_per_s: of((r) => r.total.cpuMsPerS),
    wakeups_per_s: of((r) => r.total.wakeupsPerS),
    main_thread: { cpu_ms_per_s: of((r) => r.main.cpuMsPerS), wakeups_per_s: of((r) => r.main.wakeupsPerS) },
    watcher: { cpu_ms_per_s: of((r) => r.watcher?.cpuMsPerS), wakeups_per_s: of((r) => r.watcher?.wakeupsPerS) },
    other_threads: { cpu_ms_per_s: of((r) => r.others.cpuMsPerS), wakeups_per_s: of((r) => r.others.wakeupsPerS) },
    rounds,
  });
}

runMain(main);
