/**
 * pgbench's select-only script (`pgbench -S`) against a PostgreSQL on
 * 127.0.0.1, with its per-transaction log read back for the latency figures:
 * bench/pgsql's rounds, bench/live-ab's PostgreSQL load and bench/tail-cost's.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type PgbenchProtocol = 'simple' | 'extended' | 'prepared';

/** The benchmarks' pgbench clients (connections) and threads (bench/pgsql's --clients default). */
export const PGBENCH_CLIENTS = 8;
export const PGBENCH_THREADS = 2;

export interface PgbenchOptions {
  port: number;
  /** where the log directory goes (removed after) */
  dir: string;
  seconds: number;
  clients: number;
  threads: number;
  protocol: PgbenchProtocol;
  /** transactions per second (-R); as fast as it goes when absent */
  rate?: number;
}

export interface PgbenchResult {
  /** "number of transactions actually processed" */
  transactions: number;
  /** "number of failed transactions" (PostgreSQL 15 reports it; 0 if absent) */
  failed: number;
  /** "tps = ... (without initial connection time)" */
  tps: number;
  /** from the per-transaction log: one line per transaction, latency in µs */
  logged: number;
  latencyAvgMs: number;
  latencyStddevMs: number;
  p50Ms: number;
  p99Ms: number;
}

/** pgbench's connection arguments for the server on `port`. */
export function pgbenchArgs(port: number): string[] {
  return ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'];
}

/** pgbench -i: the tables of scale `scale` (100,000 pgbench_accounts rows per unit). */
export function pgbenchInit(port: number, scale: number): void {
  const init = spawnSync('pgbench', [...pgbenchArgs(port), '-i', '-q', '-s', String(scale), 'postgres'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
}

/** Quantile of sorted values (nearest rank). */
const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];

/**
 * pgbench -S for `seconds`, as fast as it goes or at `rate` transactions/s
 * (-R: then a transaction's latency counts from when it was scheduled, so a
 * server held up shows as latency, not as fewer requests); latency figures
 * from its --log files (removed after).
 */
export function pgbench(o: PgbenchOptions): PgbenchResult {
  const logDir = fs.mkdtempSync(path.join(o.dir, 'log-'));
  const prefix = path.join(logDir, 'pgbench');
  const paced = o.rate === undefined ? [] : ['-R', String(o.rate)];
  const args = [...pgbenchArgs(o.port), '-n', '-S', '-M', o.protocol, '-c', String(o.clients), '-j', String(o.threads), '-T', String(o.seconds), ...paced, '--log', `--log-prefix=${prefix}`, 'postgres'];
  const r = spawnSync('pgbench', args, { encoding: 'utf8', cwd: logDir });
  if (r.status !== 0) throw new Error(`pgbench failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  const out = r.stdout;
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(transactions) || !Number.isFinite(tps)) throw new Error(`pgbench printed no transaction count or tps:\n${out}`);
  // log lines: client_id transaction_no time(µs) script_no time_epoch time_us
  const latencies: number[] = [];
  for (const f of fs.readdirSync(logDir)) {
    for (const line of fs.readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const us = Number(line.split(' ')[2]);
      if (!Number.isFinite(us)) throw new Error(`unexpected pgbench log line in ${f}: ${line}`);
      latencies.push(us);
    }
  }
  fs.rmSync(logDir, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  const variance = latencies.reduce((a, b) => a + (b - mean) ** 2, 0) / latencies.length;
  return {
    transactions,
    failed: Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0),
    tps,
    logged: latencies.length,
    latencyAvgMs: mean / 1000,
    latencyStddevMs: Math.sqrt(variance) / 1000,
    p50Ms: quantile(sorted, 0.5) / 1000,
    p99Ms: quantile(sorted, 0.99) / 1000,
  };
}
