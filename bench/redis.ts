/**
 * Redis benchmark: redis-server (apt) driven by redis-benchmark (GET/SET, a
 * bounded number of requests, pipelined), rounds alternating untraced / capture
 * floor / full agent. Prints and writes bench/results/redis-<date>.json.
 * Each agent first gets --warmup-requests of the same load, not measured (see bench/http.ts).
 *   node dist/bench/redis.js [--rounds N] [--requests N] [--pipeline P] [--warmup-requests N]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, machine, requireTools, summarize, withAgent, withFloor, report, runMain } from './common';

const PORT = 18320;
const ROUNDS = arg('rounds', 5);
const REQUESTS = arg('requests', 200_000);
const PIPELINE = arg('pipeline', 16);
const WARMUP_REQUESTS = arg('warmup-requests', 50_000);

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
  const rounds: Array<{ off: LoadResult; floor: LoadResult; agent: LoadResult; transactions: number; unmatched: number; wrong: number; cpu: number; drops: number }> = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const off = redisBenchmark();
      const floor = await withFloor([PORT], 60, () => redisBenchmark());
      const warmup = WARMUP_REQUESTS > 0 ? () => redisBenchmark(WARMUP_REQUESTS) : undefined;
      const run = await withAgent(['--ports', `redis=${PORT}`], dir, () => redisBenchmark(), { warmup });
      // redis-benchmark's own setup commands (CONFIG GET ...) are real transactions too;
      // what lost events left without their other half is reported unmatched, not wrong
      const ours = run.docs.filter((d) => ['SET', 'GET'].includes(d.method));
      const unmatched = ours.filter((d) => JSON.stringify(d.error ?? '').includes('Unmatched')).length;
      const wrong = ours.filter((d) => d.status !== 'OK' && !JSON.stringify(d.error ?? '').includes('Unmatched')).length;
      const complete = ours.length - unmatched;
      rounds.push({ off, floor, agent: run.result, transactions: complete, unmatched, wrong, cpu: run.cpuSeconds, drops: run.stats.kernel?.ringbufDrops ?? NaN });
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: off ${total(off).toFixed(0)} rps, floor ${total(floor).toFixed(0)}, agent ${total(run.result).toFixed(0)} ` +
          `(${complete}/${run.result.requests} txns, ${unmatched} unmatched, ${run.cpuSeconds.toFixed(2)} cpu-s, drops ${run.stats.kernel?.ringbufDrops})\n`,
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
    floor_vs_untraced_rps: summarize(rounds.map((r) => total(r.floor) / total(r.off))),
    agent_vs_untraced_rps: summarize(rounds.map((r) => total(r.agent) / total(r.off))),
    agent_vs_floor_rps: { ...summarize(rounds.map((r) => total(r.agent) / total(r.floor))), target: 0.95 },
    completeness: summarize(rounds.map((r) => r.transactions / r.agent.requests)),
    kernel_ringbuf_drops: rounds.map((r) => r.drops),
    unmatched_after_drops: rounds.map((r) => r.unmatched),
    wrong_documents: rounds.reduce((n, r) => n + r.wrong, 0),
    agent_cpu_seconds_per_10k_txns: summarize(rounds.map((r) => (r.cpu / r.transactions) * 1e4)),
    rounds,
  };
  report('redis', summary);
}

runMain(main);
