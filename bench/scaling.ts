/**
 * Scaling: the agent's cost as the same HTTP load (nginx from apt, wrk at
 * saturation for a bounded number of seconds) spreads over 1, 100 and 10,000
 * concurrent connections from one wrk process, and over 50 wrk processes of
 * 2 connections each (the same 100 connections as the 100-connection case,
 * from 50 processes). The agent runs in every case; per case: requests done,
 * agent transactions (completeness, every document checked), agent CPU
 * seconds per 10,000 transactions, agent RSS at the end and at its peak,
 * kernel drops. Growth is given relative to the 1-connection case (and the
 * 50-process case relative to the 1-process 100-connection case). Prints and
 * writes bench/results/scaling-<date>.json.
 *   node dist/bench/scaling.js [--rounds N] [--seconds S] [--processes P] [--no-write]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  arg,
  countHttpDoc,
  hardNofile,
  machine,
  median,
  newHttpTally,
  report,
  requireTools,
  runMain,
  startNginx,
  summarize,
  withAgent,
  wrkAsync,
  type HttpTally,
  type WrkResult,
} from './common';

const PORT = 18340;

const ROUNDS = arg('rounds', 3);
const SECONDS = arg('seconds', 10);
const PROCESSES = arg('processes', 50);
const CONNECTIONS_PER_PROCESS = 2;
/** Open files for nginx and wrk: 10,000 connections and some (at most the hard limit, which a container may not let root raise). */
const NOFILE_WANTED = 16_384;
const NOFILE = Math.min(NOFILE_WANTED, hardNofile());
/** wrk's reply timeout: 10,000 connections to one nginx worker wait their turn. */
const TIMEOUT_S = 10;

interface Case {
  name: string;
  processes: number;
  connectionsPerProcess: number;
}

const CASES: Case[] = [
  { name: 'c1', processes: 1, connectionsPerProcess: 1 },
  { name: 'c100', processes: 1, connectionsPerProcess: 100 },
  { name: 'c10000', processes: 1, connectionsPerProcess: 10_000 },
  { name: `p${PROCESSES}`, processes: PROCESSES, connectionsPerProcess: CONNECTIONS_PER_PROCESS },
];

interface CaseRun extends HttpTally {
  requests: number;
  rps: number;
  wrkErrors: WrkResult['errors'];
  cpuSeconds: number;
  rssMiB: number;
  rssPeakMiB: number;
  kernel: Record<string, number>;
  parseErrors: number;
  gapBytes: number;
}

/** `c.processes` wrk processes at once, each with its connections, all for SECONDS. */
async function load(c: Case): Promise<{ requests: number; rps: number; errors: WrkResult['errors'] }> {
  const runs = await Promise.all(
    Array.from({ length: c.processes }, () =>
      wrkAsync({ port: PORT, connections: c.connectionsPerProcess, seconds: SECONDS, timeoutS: TIMEOUT_S, nofile: c.connectionsPerProcess > 500 ? NOFILE : undefined }),
    ),
  );
  const errors = { connect: 0, read: 0, write: 0, timeout: 0, status: 0 };
  for (const r of runs) for (const k of Object.keys(errors) as Array<keyof typeof errors>) errors[k] += r.errors[k];
  return { requests: runs.reduce((n, r) => n + r.requests, 0), rps: runs.reduce((n, r) => n + r.rps, 0), errors };
}

async function runCase(c: Case, dir: string): Promise<CaseRun> {
  const tally = newHttpTally();
  const run = await withAgent(['--ports', `http=${PORT}`], dir, () => load(c), { onDoc: (d) => countHttpDoc(tally, d) });
  return {
    requests: run.result.requests,
    rps: run.result.rps,
    wrkErrors: run.result.errors,
    ...tally,
    cpuSeconds: run.cpuSeconds,
    rssMiB: run.rssMiB,
    rssPeakMiB: run.rssPeakMiB,
    kernel: run.stats.kernel ?? {},
    parseErrors: run.stats.parse_errors ?? NaN,
    gapBytes: run.stats.gap_bytes ?? NaN,
  };
}

const cpuPer10k = (r: CaseRun): number => (r.cpuSeconds / r.transactions) * 1e4;

async function main(): Promise<void> {
  requireTools({ nginx: 'nginx-light', wrk: 'wrk' });
  const most = Math.max(...CASES.map((c) => c.connectionsPerProcess));
  if (NOFILE < most + 100) throw new Error(`${most} connections need ${most + 100} open files, the hard limit is ${NOFILE}: raise it (ulimit -Hn ${NOFILE_WANTED}) before running`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-scaling-bench-'));
  const nginx = await startNginx(dir, PORT, { workerConnections: NOFILE, nofile: NOFILE, backlog: 4096 });
  const rounds: Array<Record<string, CaseRun>> = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const round: Record<string, CaseRun> = {};
      for (const c of CASES) {
        const r = await runCase(c, dir);
        round[c.name] = r;
        process.stderr.write(
          `round ${i + 1}/${ROUNDS} ${c.name}: ${r.requests} requests (${r.rps.toFixed(0)} rps), ${r.transactions} txns, ${r.unanswered} unanswered, ${r.unmatched} unmatched, ${r.wrong} wrong, ` +
            `${r.cpuSeconds.toFixed(2)} cpu-s, rss ${r.rssMiB.toFixed(0)} MiB (peak ${r.rssPeakMiB.toFixed(0)}), drops ${r.kernel.ringbufDrops ?? '?'}, ` +
            `wrk errors ${JSON.stringify(r.wrkErrors)}\n`,
        );
      }
      rounds.push(round);
    }
  } finally {
    await nginx.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const of = (name: string) => rounds.map((r) => r[name]);
  const cases = Object.fromEntries(
    CASES.map((c) => {
      const rs = of(c.name);
      return [
        c.name,
        {
          processes: c.processes,
          connections: c.processes * c.connectionsPerProcess,
          requests: Math.round(median(rs.map((r) => r.requests))),
          requests_per_s: Math.round(median(rs.map((r) => r.rps))),
          completeness: summarize(rs.map((r) => r.transactions / r.requests)),
          unanswered_at_stop: rs.map((r) => r.unanswered),
          unmatched_after_drops: rs.map((r) => r.unmatched),
          wrong_documents: rs.reduce((n, r) => n + r.wrong, 0),
          wrong_sample: rs.flatMap((r) => r.wrongSample).slice(0, 3),
          wrk_socket_errors: rs.map((r) => r.wrkErrors),
          agent_cpu_seconds_per_10k_txns: summarize(rs.map(cpuPer10k)),
          agent_rss_mib_at_end: summarize(rs.map((r) => r.rssMiB)),
          agent_rss_mib_peak: summarize(rs.map((r) => r.rssPeakMiB)),
          kernel_ringbuf_drops: rs.map((r) => r.kernel.ringbufDrops ?? null),
          kernel_inflight_full: rs.map((r) => r.kernel.inflightFull ?? null),
          parse_errors: rs.map((r) => r.parseErrors),
          gap_bytes: rs.map((r) => r.gapBytes),
        },
      ];
    }),
  );
  /** per-round ratio of case `a` to case `b` of a figure */
  const growth = (a: string, b: string, f: (r: CaseRun) => number) => summarize(rounds.map((r) => f(r[a]) / f(r[b])));
  const growthOf = (a: string, b: string) => ({
    cpu_per_10k_txns: growth(a, b, cpuPer10k),
    rss_at_end: growth(a, b, (r) => r.rssMiB),
    rss_peak: growth(a, b, (r) => r.rssPeakMiB),
  });
  const processCase = `p${PROCESSES}`;
  const summary = {
    machine: machine(),
    load: {
      tool: 'wrk at saturation',
      seconds_per_case: SECONDS,
      rounds: ROUNDS,
      cases: CASES.map((c) => `${c.name}: ${c.processes} × wrk -t1 -c${c.connectionsPerProcess}`),
      response: 'nginx "hello\\n", keep-alive, one worker',
    },
    cases,
    growth_vs_c1: Object.fromEntries(CASES.filter((c) => c.name !== 'c1').map((c) => [c.name, growthOf(c.name, 'c1')])),
    [`growth_${processCase}_vs_c100`]: growthOf(processCase, 'c100'),
    rounds,
  };
  report('scaling', summary);
}

runMain(main);
