/**
 * Redis benchmark: redis-server (apt) driven by redis-benchmark (GET/SET, a
 * bounded number of requests, pipelined), rounds alternating untraced / capture
 * floor / full agent. Prints and writes bench/results/redis-<date>.json.
 * Each agent first gets --warmup-requests of the same load, not measured, repeated
 * while it drains a burst at normal priority, up to --spend-burst seconds (see bench/http.ts).
 * Then the same three modes below saturation (bench/paced-redis.ts: 16
 * connections, one command at a time, --delay ms between a reply and the next
 * command, as wrk's paced mode in bench/http.ts): added latency, and
 * completeness checked command by command (every SET/GET carries its own key).
 *   node dist/bench/redis.js [--rounds N] [--requests N] [--pipeline P] [--warmup-requests N] [--spend-burst S] [--seconds S] [--delay MS]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  arg,
  machine,
  median,
  r3,
  requireTools,
  schedOf,
  schedSummary,
  SPEND_BURST_DEFAULT_S,
  summarize,
  warmupOf,
  withAgent,
  withFloor,
  report,
  runMain,
  REPO,
  type SchedFigures,
  type WarmupRuns,
} from './common';
import type { PacedRedisResult } from './paced-redis';

const PORT = 18320;
const ROUNDS = arg('rounds', 5);
const REQUESTS = arg('requests', 200_000);
const PIPELINE = arg('pipeline', 16);
const WARMUP_REQUESTS = arg('warmup-requests', 50_000);
/** The warm-up runs again while sched_idle auto drains a burst at normal priority, up to this many seconds (see bench/common.ts). */
const SPEND_BURST_S = arg('spend-burst', SPEND_BURST_DEFAULT_S);
/** Paced rounds: seconds, the delay between a reply and a connection's next command, the agent's warm-up. */
const PACED_SECONDS = arg('seconds', 5);
const PACED_DELAY_MS = arg('delay', 2);
const PACED_WARMUP_S = 3;
const PACED_CONNECTIONS = 16;

/** bench/paced-redis.js in its own process (its timing is not disturbed by this one's). */
function pacedRedis(prefix: string, seconds = PACED_SECONDS): PacedRedisResult {
  const args = [path.join(REPO, 'dist/bench/paced-redis.js'), '--port', String(PORT), '--connections', String(PACED_CONNECTIONS), '--delay', String(PACED_DELAY_MS), '--seconds', String(seconds), '--prefix', prefix];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`paced-redis failed (${r.status ?? r.signal}): ${r.stderr}`);
  const result = JSON.parse(r.stdout) as PacedRedisResult;
  if (result.badReplies > 0) throw new Error(`paced-redis: ${result.badReplies} replies were not what the commands wrote`);
  return result;
}

/** The agent's documents of one paced run checked against the commands sent (`SET|GET <prefix>:<conn>:<n>`). */
function tallyPaced(docs: Array<Record<string, any>>, prefix: string): { transactions: number; unmatched: number; wrong: number; duplicates: number } {
  const re = new RegExp(`^(SET ${prefix}:(\\d+):(\\d+) v(\\d+)|GET ${prefix}:(\\d+):(\\d+))$`);
  const seen = new Set<string>();
  let transactions = 0;
  let unmatched = 0;
  let wrong = 0;
  let duplicates = 0;
  for (const d of docs) {
    const query = String(d.query ?? '');
    if (d.type !== 'redis' || !query.includes(` ${prefix}:`)) continue;
    const m = re.exec(query);
    if (m && JSON.stringify(d.error ?? '').includes('Unmatched')) {
      unmatched++;
      continue;
    }
    const set = m?.[2] !== undefined;
    // the value written is the key's number: SET p:c:n vn
    const ok = m !== null && d.status === 'OK' && d.method === (set ? 'SET' : 'GET') && (!set || m[3] === m[4]);
    if (!ok) {
      wrong++;
      continue;
    }
    if (seen.has(query)) duplicates++;
    else {
      seen.add(query);
      transactions++;
    }
  }
  return { transactions, unmatched, wrong, duplicates };
}

interface LoadResult {
  /** requests/s of each test, in order */
  rps: Record<string, number>;
  requests: number;
}

function redisBenchmark(requests = REQUESTS): LoadResult {
  const r = spawnSync('redis-benchmark', ['-p', String(PORT), '-t', 'set,get', '-n', String(requests), '-P', String(PIPELINE), '-c', '16', '-q'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-benchmark failed: ${r.stderr}`);
  const rps: Record<string, number> = {};
  // "SET: 123456.79 requests per second, p50=..." (the last line of each test)
  for (const m of r.stdout.matchAll(/(\w+): ([\d.]+) requests per second/g)) rps[m[1]] = Number(m[2]);
  return { rps, requests: 2 * requests };
}

const total = (l: LoadResult) => Object.values(l.rps).reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  requireTools({ 'redis-server': 'redis-server', 'redis-benchmark': 'redis-tools' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-redis-bench-'));
  const server = spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const rounds: Array<{ off: LoadResult; floor: LoadResult; agent: LoadResult; transactions: number; unmatched: number; wrong: number; cpu: number; drops: number; sched: SchedFigures | null; warmup: WarmupRuns | null }> = [];
  const paced: Array<{ off: PacedRedisResult; floor: PacedRedisResult; agent: PacedRedisResult; transactions: number; unmatched: number; wrong: number; duplicates: number; cpu: number; drops: number; sched: SchedFigures | null }> = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const off = redisBenchmark();
      const floor = await withFloor([PORT], 60, () => redisBenchmark());
      const warmup = WARMUP_REQUESTS > 0 ? () => redisBenchmark(WARMUP_REQUESTS) : undefined;
      const run = await withAgent(['--ports', `redis=${PORT}`], dir, () => redisBenchmark(), { warmup, spendBurstS: SPEND_BURST_S });
      // redis-benchmark's own setup commands (CONFIG GET ...) are real transactions too;
      // what lost events left without their other half is reported unmatched, not wrong
      const ours = run.docs.filter((d) => ['SET', 'GET'].includes(d.method));
      const unmatched = ours.filter((d) => JSON.stringify(d.error ?? '').includes('Unmatched')).length;
      const wrong = ours.filter((d) => d.status !== 'OK' && !JSON.stringify(d.error ?? '').includes('Unmatched')).length;
      const complete = ours.length - unmatched;
      rounds.push({ off, floor, agent: run.result, transactions: complete, unmatched, wrong, cpu: run.cpuSeconds, drops: run.stats.kernel?.ringbufDrops ?? NaN, sched: schedOf(run.stats), warmup: warmupOf(run) });
      // below saturation: a key prefix per run, so each document is matched to its command
      const pOff = pacedRedis(`pbe-off${i}`);
      const pFloor = await withFloor([PORT], PACED_SECONDS + 10, () => pacedRedis(`pbe-floor${i}`));
      const pRun = await withAgent(['--ports', `redis=${PORT}`], dir, () => pacedRedis(`pbe-agent${i}`), {
        warmup: () => pacedRedis(`pbe-warm${i}`, PACED_WARMUP_S),
        spendBurstS: SPEND_BURST_S,
      });
      const tally = tallyPaced(pRun.docs, `pbe-agent${i}`);
      paced.push({ off: pOff, floor: pFloor, agent: pRun.result, ...tally, cpu: pRun.cpuSeconds, drops: pRun.stats.kernel?.ringbufDrops ?? NaN, sched: schedOf(pRun.stats) });
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: off ${total(off).toFixed(0)} rps, floor ${total(floor).toFixed(0)}, agent ${total(run.result).toFixed(0)} ` +
          `(${complete}/${run.result.requests} txns, ${unmatched} unmatched, ${run.cpuSeconds.toFixed(2)} cpu-s, drops ${run.stats.kernel?.ringbufDrops}); ` +
          `paced ${pRun.result.rps.toFixed(0)} rps: p99 µs off ${pOff.p99us.toFixed(0)}, floor ${pFloor.p99us.toFixed(0)}, agent ${pRun.result.p99us.toFixed(0)} ` +
          `(${tally.transactions}/${pRun.result.requests} txns, ${tally.wrong} wrong, drops ${pRun.stats.kernel?.ringbufDrops})\n`,
      );
    }
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const summary = {
    machine: machine(),
    load: { tool: 'redis-benchmark', tests: 'set,get', requests_per_test: REQUESTS, pipeline: PIPELINE, clients: 16, rounds: ROUNDS },
    agent_warmup_requests_per_test: WARMUP_REQUESTS,
    spend_burst_max_s: SPEND_BURST_S,
    floor_vs_untraced_rps: summarize(rounds.map((r) => total(r.floor) / total(r.off))),
    agent_vs_untraced_rps: summarize(rounds.map((r) => total(r.agent) / total(r.off))),
    agent_vs_floor_rps: { ...summarize(rounds.map((r) => total(r.agent) / total(r.floor))), target: 0.95 },
    completeness: summarize(rounds.map((r) => r.transactions / r.agent.requests)),
    kernel_ringbuf_drops: rounds.map((r) => r.drops),
    agent_sched: schedSummary(rounds.map((r) => r.sched)),
    // the warm-up repeated while a burst was drained at normal priority: the measured load finds it spent
    agent_warmups: rounds.map((r) => r.warmup),
    unmatched_after_drops: rounds.map((r) => r.unmatched),
    wrong_documents: rounds.reduce((n, r) => n + r.wrong, 0),
    agent_cpu_seconds_per_10k_txns: summarize(rounds.map((r) => (r.cpu / r.transactions) * 1e4)),
    fixed_rate: {
      load: `bench/paced-redis.ts: ${PACED_CONNECTIONS} connections, SET/GET one at a time, ${PACED_DELAY_MS} ms after each reply, ${PACED_SECONDS} s (the agent warmed ${PACED_WARMUP_S} s first)`,
      requests_per_s: r3(median(paced.map((r) => r.off.rps))),
      latency_us: Object.fromEntries(
        (['off', 'floor', 'agent'] as const).map((m) => [m === 'off' ? 'untraced' : m, { p50: r3(median(paced.map((r) => r[m].p50us))), p99: r3(median(paced.map((r) => r[m].p99us))), average: r3(median(paced.map((r) => r[m].avgUs))) }]),
      ),
      agent_p50_vs_untraced: summarize(paced.map((r) => r.agent.p50us / r.off.p50us)),
      agent_p99_vs_untraced: { ...summarize(paced.map((r) => r.agent.p99us / r.off.p99us)), target: 1.1 },
      floor_p99_vs_untraced: summarize(paced.map((r) => r.floor.p99us / r.off.p99us)),
      agent_p99_vs_floor: summarize(paced.map((r) => r.agent.p99us / r.floor.p99us)),
      completeness: { ...summarize(paced.map((r) => r.transactions / r.agent.requests)), target: 0.999 },
      wrong_documents: paced.reduce((n, r) => n + r.wrong, 0),
      duplicate_documents: paced.reduce((n, r) => n + r.duplicates, 0),
      unmatched_after_drops: paced.map((r) => r.unmatched),
      kernel_ringbuf_drops: paced.map((r) => r.drops),
      // sched_idle auto raising the agent to normal priority preempts the client and redis-server
      agent_sched: schedSummary(paced.map((r) => r.sched)),
      agent_cpu_seconds_per_10k_txns: summarize(paced.map((r) => (r.cpu / Math.max(1, r.transactions)) * 1e4)),
    },
    rounds,
    fixed_rate_rounds: paced,
  };
  report('redis', summary);
}

runMain(main);
