/**
 * What the traced application's tail latency pays for CPU spent beside it, and
 * how that depends on how the CPU is spent: pgbench -S at a fixed rate (latency
 * counted from each transaction's scheduled start) against a private PostgreSQL,
 * rounds alternating, in a new order each round:
 *   untraced;
 *   the capture floor (bench/floor/floor.c, drained every 20 ms);
 *   stand-ins for an agent's work without the work: the floor under SCHED_IDLE
 *   spinning after each drain, --spin-us µs every --interval-ms ms in one piece,
 *   the same in pieces of --slice-us µs with a sched_yield between, and
 *   --long-factor times as long every --long-factor times as seldom (the same
 *   CPU in longer runs);
 *   the agent as it runs by default (after --warmup seconds of the same load).
 * Prints each one's median p99, the per-round ratios to untraced (median,
 * geometric mean with a 95% bootstrap interval) and its CPU seconds per 10,000
 * transactions; writes bench/results/tail-cost-<date>.json.
 *   node dist/bench/tail-cost.js [--rounds 6] [--seconds 5] [--rate 2000] [--warmup 10]
 *                                [--spin-us 500] [--interval-ms 5] [--slice-us 100] [--long-factor 4] [--no-write]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startPostgres } from '../test/helpers/databases';
import {
  arg,
  cpuSeconds,
  machine,
  median,
  r3,
  ratioInterval,
  report,
  requireTools,
  runMain,
  summarize,
  wholeArg,
  withAgent,
  withFloor,
} from './common';
import { pgbench, PGBENCH_CLIENTS, PGBENCH_THREADS, pgbenchInit, type PgbenchResult } from './pgbench';

const PORT = 18336;
const ROUNDS = wholeArg('rounds', 6, 1);
const SECONDS = arg('seconds', 5);
const RATE = wholeArg('rate', 2000, 1);
const WARMUP_S = arg('warmup', 10);
const SPIN_US = wholeArg('spin-us', 500, 1);
const INTERVAL_MS = wholeArg('interval-ms', 5, 1);
const SLICE_US = wholeArg('slice-us', 100, 1);
const LONG_FACTOR = wholeArg('long-factor', 4, 2);

interface Setup {
  name: string;
  what: string;
  /** undefined: untraced; 'agent': the agent; otherwise the floor's arguments */
  floorArgs?: string[] | 'agent';
}

const spinArgs = (spinUs: number, intervalMs: number, sliceUs?: number): string[] => [
  '--interval-ms',
  String(intervalMs),
  '--spin-us',
  String(spinUs),
  ...(sliceUs === undefined ? [] : ['--slice-us', String(sliceUs)]),
  '--sched-idle',
];

const SETUPS: Setup[] = [
  { name: 'untraced', what: 'pgbench and PostgreSQL alone' },
  { name: 'floor', what: 'the capture floor, drained every 20 ms', floorArgs: [] },
  { name: 'spin', what: `the floor under SCHED_IDLE, spinning ${SPIN_US} µs after each drain every ${INTERVAL_MS} ms`, floorArgs: spinArgs(SPIN_US, INTERVAL_MS) },
  {
    name: 'spin_sliced',
    what: `the same in ${SLICE_US} µs pieces with a sched_yield between`,
    floorArgs: spinArgs(SPIN_US, INTERVAL_MS, SLICE_US),
  },
  {
    name: 'spin_long',
    what: `the same CPU in longer runs: ${SPIN_US * LONG_FACTOR} µs every ${INTERVAL_MS * LONG_FACTOR} ms`,
    floorArgs: spinArgs(SPIN_US * LONG_FACTOR, INTERVAL_MS * LONG_FACTOR),
  },
  { name: 'agent', what: `the agent (packetbeat-ebpf run, defaults) after a ${WARMUP_S} s warm-up`, floorArgs: 'agent' },
];

interface Round {
  p99Ms: number;
  p50Ms: number;
  tps: number;
  /** CPU seconds of the floor or agent per 10,000 transactions (0 untraced) */
  cpuPer10k: number;
}

function load(dir: string, seconds = SECONDS): PgbenchResult {
  return pgbench({ port: PORT, dir, seconds, clients: PGBENCH_CLIENTS, threads: PGBENCH_THREADS, protocol: 'simple', rate: RATE });
}

const roundOf = (r: PgbenchResult, cpu: number): Round => ({ p99Ms: r.p99Ms, p50Ms: r.p50Ms, tps: r.tps, cpuPer10k: r3((cpu / r.transactions) * 1e4) });

async function measure(setup: Setup, dir: string): Promise<Round> {
  if (setup.floorArgs === undefined) return roundOf(load(dir), 0);
  if (setup.floorArgs === 'agent') {
    const run = await withAgent(['--ports', `pgsql=${PORT}`], dir, () => load(dir), { warmup: WARMUP_S > 0 ? () => load(dir, WARMUP_S) : undefined });
    return roundOf(run.result, run.cpuSeconds);
  }
  return withFloor(
    [PORT],
    SECONDS + 10,
    (floor) => {
      load(dir, 1); // the floor's first drains, not measured
      const cpu0 = cpuSeconds(floor.pid);
      const r = load(dir);
      return roundOf(r, cpuSeconds(floor.pid) - cpu0);
    },
    setup.floorArgs,
  );
}

async function main(): Promise<void> {
  requireTools({ pgbench: 'postgresql', pg_isready: 'postgresql', runuser: 'util-linux' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-tail-cost-'));
  const pg = await startPostgres(PORT);
  const rounds: Record<string, Round[]> = Object.fromEntries(SETUPS.map((s) => [s.name, []]));
  try {
    pgbenchInit(PORT, 1);
    for (let i = 0; i < ROUNDS; i++) {
      // a new order each round: what runs first or after the agent is not always the same
      const order = SETUPS.map((_, k) => SETUPS[(k + i) % SETUPS.length]);
      for (const setup of order) {
        const dirRound = fs.mkdtempSync(path.join(dir, `${setup.name}-`));
        rounds[setup.name].push(await measure(setup, dirRound));
        fs.rmSync(dirRound, { recursive: true, force: true });
      }
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: p99 ${SETUPS.map((s) => `${s.name} ${rounds[s.name][i].p99Ms.toFixed(3)} ms (${rounds[s.name][i].cpuPer10k} CPU-s/10k)`).join(', ')}\n`,
      );
    }
  } finally {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const untraced = rounds.untraced.map((r) => r.p99Ms);
  const setups = Object.fromEntries(
    SETUPS.map((s) => {
      const rs = rounds[s.name];
      const ratios = rs.map((r, i) => r.p99Ms / untraced[i]);
      return [
        s.name,
        {
          what: s.what,
          p99_ms: summarize(rs.map((r) => r.p99Ms)),
          p99_ratio_to_untraced: s.name === 'untraced' ? null : { ...summarize(ratios), ...ratioInterval(ratios) },
          cpu_seconds_per_10k: r3(median(rs.map((r) => r.cpuPer10k))),
          tps: summarize(rs.map((r) => r.tps)),
        },
      ];
    }),
  );
  report('tail-cost', {
    machine: machine(),
    load: `pgbench -S -M simple -R ${RATE} -c ${PGBENCH_CLIENTS} -j ${PGBENCH_THREADS} (latency from each transaction's scheduled start), ${SECONDS} s a round`,
    rounds_per_setup: ROUNDS,
    setups,
    rounds,
  });
}

runMain(main);
