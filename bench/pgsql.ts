/**
 * PostgreSQL benchmark: a private PostgreSQL 15 (apt; started like the
 * integration tests, test/helpers/databases.ts) driven by pgbench's built-in
 * select-only script (`pgbench -S`: one `SELECT abalance FROM pgbench_accounts
 * WHERE aid = ...` per transaction), rounds alternating untraced / capture
 * floor / full agent. The query protocol is `-M simple` by default (the aid is
 * in the query text, so every document can be checked against the script);
 * `--protocol extended|prepared` runs the others. Latency average, p50 and p99
 * come from pgbench's per-transaction log (--log). Prints and writes
 * bench/results/pgsql-<date>.json.
 * Each agent first gets --warmup seconds of the same load, not measured, repeated
 * while it drains a burst at normal priority, up to --spend-burst seconds (see bench/http.ts).
 * Then the same three modes at a fixed rate well below saturation (pgbench
 * -R: transactions scheduled at that rate, latency counted from the schedule),
 * where the added latency and completeness are the figures.
 *   node dist/bench/pgsql.js [--rounds N] [--seconds S] [--clients C] [--scale S] [--protocol simple|extended|prepared] [--warmup S] [--spend-burst S] [--rate TPS] [--agent-args "ARGS"] [--no-write]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startPostgres } from '../test/helpers/databases';
import {
  arg,
  choiceArg,
  listArg,
  machine,
  median,
  r3,
  report,
  requireTools,
  runMain,
  schedOf,
  schedSummary,
  SPEND_BURST_DEFAULT_S,
  summarize,
  warmupOf,
  withAgent,
  withFloor,
  type SchedFigures,
  type WarmupRuns,
} from './common';
import { pgbench as runPgbench, PGBENCH_CLIENTS, PGBENCH_THREADS, pgbenchInit, type PgbenchResult } from './pgbench';

const PORT = 18330;

const ROUNDS = arg('rounds', 5);
const SECONDS = arg('seconds', 5);
const WARMUP_S = arg('warmup', 3);
/** The warm-up runs again while sched_idle auto drains a burst at normal priority, up to this many seconds (see bench/common.ts). */
const SPEND_BURST_S = arg('spend-burst', SPEND_BURST_DEFAULT_S);
const CLIENTS = arg('clients', PGBENCH_CLIENTS);
/** Transactions per second of the fixed-rate rounds (saturation is ~40,000-55,000 here). */
const RATE = arg('rate', 2000);
const THREADS = Math.min(PGBENCH_THREADS, CLIENTS);
/** pgbench scale: 100,000 pgbench_accounts rows per unit */
const SCALE = arg('scale', 1);
/** More arguments of `packetbeat-ebpf run` (split at spaces), e.g. `-c drain5.yml`: a setting's figures beside the default's. */
const AGENT_ARGS = listArg('agent-args');
const PROTOCOL = choiceArg('protocol', ['simple', 'extended', 'prepared'] as const, 'simple');

/** What pgbench -S sends: the aid inline with -M simple, a parameter otherwise. */
const SELECT_SQL = PROTOCOL === 'simple' ? /^SELECT abalance FROM pgbench_accounts WHERE aid = (\d+)$/ : /^SELECT abalance FROM pgbench_accounts WHERE aid = \$1$/;
/** What pgbench asks once per run before the clients start (the scale, whether pgbench_accounts is partitioned). */
const PGBENCH_SETUP_SQL = [/^select count\(\*\) from pgbench_branches$/, /^select o\.n, p\.partstrat, /];

/** pgbench -S against this benchmark's server, for `seconds`, as fast as it goes or at `rate` transactions/s. */
function pgbench(dir: string, seconds = SECONDS, rate?: number): PgbenchResult {
  return runPgbench({ port: PORT, dir, seconds, clients: CLIENTS, threads: THREADS, protocol: PROTOCOL, rate });
}

/** Median over rounds of pgbench's latency figures, ms. */
function latency(rs: PgbenchResult[]): Record<string, number> {
  const m = (f: (r: PgbenchResult) => number) => r3(median(rs.map(f)));
  return { average: m((r) => r.latencyAvgMs), stddev: m((r) => r.latencyStddevMs), p50: m((r) => r.p50Ms), p99: m((r) => r.p99Ms) };
}

interface AgentRound extends PgbenchResult {
  /** documents of pgbench's SELECT with the script's text, an aid in range, one row, status OK */
  documents: number;
  /** any other document: counted as missing */
  wrong: number;
  /** pgbench's SELECT whose answer was lost to kernel drops ("Unmatched request"): missing, accounted for */
  unmatchedDocs: number;
  /** pgbench's own setup queries (PGBENCH_SETUP_SQL) */
  other: number;
  wrongSample: unknown[];
  cpuSeconds: number;
  rssMiB: number;
  kernel: Record<string, number>;
  /** sched_idle auto's boosts over the measured run */
  sched: SchedFigures | null;
  warmup: WarmupRuns | null;
  unmatched: number;
  parseErrors: number;
  /** bytes the decoders skipped over (lost to drops) */
  gapBytes: number;
}

async function agentRound(dir: string, rate?: number): Promise<AgentRound> {
  const warmup = WARMUP_S > 0 ? () => pgbench(dir, WARMUP_S, rate) : undefined;
  const run = await withAgent(['--ports', `pgsql=${PORT}`, ...AGENT_ARGS], dir, () => pgbench(dir, SECONDS, rate), { warmup, spendBurstS: SPEND_BURST_S });
  let documents = 0;
  let wrong = 0;
  let other = 0;
  let unmatchedDocs = 0;
  const wrongSample: unknown[] = [];
  const maxAid = 100_000 * SCALE;
  for (const d of run.docs) {
    const query = String(d.query ?? '');
    if (d.type === 'pgsql' && PGBENCH_SETUP_SQL.some((re) => re.test(query))) {
      other++;
      continue;
    }
    const m = SELECT_SQL.exec(query);
    const aidOk = PROTOCOL !== 'simple' || (m !== null && Number(m[1]) >= 1 && Number(m[1]) <= maxAid);
    if (m && aidOk && d.type === 'pgsql' && d.method === 'SELECT' && d.status === 'OK' && d.pgsql?.num_rows === 1) documents++;
    else if (m && aidOk && d.type === 'pgsql' && d.error?.message === 'Unmatched request') unmatchedDocs++;
    else {
      wrong++;
      if (wrongSample.length < 3) wrongSample.push({ type: d.type, query, method: d.method, status: d.status, pgsql: d.pgsql, error: d.error });
    }
  }
  return {
    ...run.result,
    documents,
    wrong,
    unmatchedDocs,
    other,
    wrongSample,
    cpuSeconds: run.cpuSeconds,
    rssMiB: run.rssMiB,
    kernel: run.stats.kernel ?? {},
    sched: schedOf(run.stats),
    warmup: warmupOf(run),
    unmatched: run.stats.unmatched ?? NaN,
    parseErrors: run.stats.parse_errors ?? NaN,
    gapBytes: run.stats.gap_bytes ?? NaN,
  };
}

async function main(): Promise<void> {
  requireTools({ pgbench: 'postgresql', pg_isready: 'postgresql', runuser: 'util-linux' });
  const pg = await startPostgres(PORT);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pgsql-bench-'));
  const rounds: Array<{ off: PgbenchResult; floor: PgbenchResult; agent: AgentRound }> = [];
  const fixed: Array<{ off: PgbenchResult; floor: PgbenchResult; agent: AgentRound }> = [];
  /** pgbench's log has a line per transaction: a check on the count it prints */
  const checkLogged = (round: { off: PgbenchResult; floor: PgbenchResult; agent: AgentRound }, what: string) => {
    for (const [mode, r] of [['untraced', round.off], ['floor', round.floor], ['agent', round.agent]] as const) {
      if (r.logged !== r.transactions) throw new Error(`${what} ${mode}: pgbench logged ${r.logged} transactions but reported ${r.transactions}`);
    }
  };
  try {
    pgbenchInit(PORT, SCALE);
    for (let i = 0; i < ROUNDS; i++) {
      const off = pgbench(dir);
      const floor = await withFloor([PORT], SECONDS, () => pgbench(dir));
      const agent = await agentRound(dir);
      checkLogged({ off, floor, agent }, 'saturation');
      rounds.push({ off, floor, agent });
      const paced = {
        off: pgbench(dir, SECONDS, RATE),
        floor: await withFloor([PORT], SECONDS, () => pgbench(dir, SECONDS, RATE)),
        agent: await agentRound(dir, RATE),
      };
      checkLogged(paced, `-R ${RATE}`);
      fixed.push(paced);
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: tps off ${off.tps.toFixed(0)}, floor ${floor.tps.toFixed(0)}, agent ${agent.tps.toFixed(0)} ` +
          `(${agent.documents}/${agent.transactions} txns, ${agent.unmatchedDocs} unanswered after drops, ${agent.wrong} wrong, ${agent.cpuSeconds.toFixed(2)} cpu-s, drops ${agent.kernel.ringbufDrops ?? '?'}); ` +
          `-R ${RATE}: p99 ms off ${paced.off.p99Ms.toFixed(2)}, floor ${paced.floor.p99Ms.toFixed(2)}, agent ${paced.agent.p99Ms.toFixed(2)} ` +
          `(${paced.agent.documents}/${paced.agent.transactions} txns, ${paced.agent.wrong} wrong, drops ${paced.agent.kernel.ringbufDrops ?? '?'})\n`,
      );
    }
  } finally {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const wrongSample = [...rounds, ...fixed].flatMap((r) => r.agent.wrongSample).slice(0, 3);
  const summary = {
    machine: machine(),
    load: {
      agent_args: AGENT_ARGS,
      tool: 'pgbench',
      script: 'select-only (-S): SELECT abalance FROM pgbench_accounts WHERE aid = :aid',
      protocol: PROTOCOL,
      clients: CLIENTS,
      threads: THREADS,
      scale: SCALE,
      seconds: SECONDS,
      fixed_rate_tps: RATE,
      agent_warmup_seconds: WARMUP_S,
      spend_burst_max_s: SPEND_BURST_S,
      rounds: ROUNDS,
      server: 'PostgreSQL 15 (Debian), fsync=off, on 127.0.0.1',
    },
    floor_vs_untraced_tps: summarize(rounds.map((r) => r.floor.tps / r.off.tps)),
    agent_vs_untraced_tps: summarize(rounds.map((r) => r.agent.tps / r.off.tps)),
    agent_vs_floor_tps: { ...summarize(rounds.map((r) => r.agent.tps / r.floor.tps)), target: 0.95 },
    latency_ms: { untraced: latency(rounds.map((r) => r.off)), floor: latency(rounds.map((r) => r.floor)), agent: latency(rounds.map((r) => r.agent)) },
    agent_p99_vs_untraced: summarize(rounds.map((r) => r.agent.p99Ms / r.off.p99Ms)),
    completeness: summarize(rounds.map((r) => r.agent.documents / r.agent.transactions)),
    pgbench_failed_transactions: rounds.reduce((n, r) => n + r.off.failed + r.floor.failed + r.agent.failed, 0),
    wrong_documents: rounds.reduce((n, r) => n + r.agent.wrong, 0),
    fixed_rate: {
      load: `pgbench -S -R ${RATE} (latency from each transaction's scheduled start)`,
      tps: { untraced: r3(median(fixed.map((r) => r.off.tps))), floor: r3(median(fixed.map((r) => r.floor.tps))), agent: r3(median(fixed.map((r) => r.agent.tps))) },
      latency_ms: { untraced: latency(fixed.map((r) => r.off)), floor: latency(fixed.map((r) => r.floor)), agent: latency(fixed.map((r) => r.agent)) },
      agent_p50_vs_untraced: summarize(fixed.map((r) => r.agent.p50Ms / r.off.p50Ms)),
      agent_p99_vs_untraced: { ...summarize(fixed.map((r) => r.agent.p99Ms / r.off.p99Ms)), target: 1.1 },
      floor_p99_vs_untraced: summarize(fixed.map((r) => r.floor.p99Ms / r.off.p99Ms)),
      agent_p99_vs_floor: summarize(fixed.map((r) => r.agent.p99Ms / r.floor.p99Ms)),
      completeness: { ...summarize(fixed.map((r) => r.agent.documents / r.agent.transactions)), target: 0.999 },
      wrong_documents: fixed.reduce((n, r) => n + r.agent.wrong, 0),
      unanswered_after_drops: fixed.map((r) => r.agent.unmatchedDocs),
      kernel_ringbuf_drops: fixed.map((r) => r.agent.kernel.ringbufDrops ?? null),
      // sched_idle auto raising the agent to normal priority preempts pgbench and the server
      agent_sched: schedSummary(fixed.map((r) => r.agent.sched)),
      agent_cpu_seconds_per_10k_txns: summarize(fixed.map((r) => (r.agent.cpuSeconds / r.agent.documents) * 1e4)),
    },
    ...(wrongSample.length > 0 ? { wrong_sample: wrongSample } : {}),
    other_documents: rounds.map((r) => r.agent.other),
    unanswered_after_drops: rounds.map((r) => r.agent.unmatchedDocs),
    kernel_ringbuf_drops: rounds.map((r) => r.agent.kernel.ringbufDrops ?? null),
    agent_sched: schedSummary(rounds.map((r) => r.agent.sched)),
    // the warm-up repeated while a burst was drained at normal priority: the measured load finds it spent
    agent_warmups: rounds.map((r) => r.agent.warmup),
    gap_bytes: rounds.map((r) => r.agent.gapBytes),
    /** to weigh the drops: how many kernel events one pgbench transaction makes */
    kernel_events_per_transaction: summarize(rounds.map((r) => (r.agent.kernel.events + r.agent.kernel.ringbufDrops) / r.agent.transactions)),
    unmatched: rounds.map((r) => r.agent.unmatched),
    parse_errors: rounds.map((r) => r.agent.parseErrors),
    agent_cpu_seconds_per_10k_txns: summarize(rounds.map((r) => (r.agent.cpuSeconds / r.agent.documents) * 1e4)),
    agent_rss_mib: r3(median(rounds.map((r) => r.agent.rssMiB))),
    rounds: rounds.map((r) => ({ ...r, agent: { ...r.agent, wrongSample: undefined } })),
    fixed_rate_rounds: fixed.map((r) => ({ ...r, agent: { ...r.agent, wrongSample: undefined } })),
  };
  report('pgsql', summary);
}

runMain(main);
