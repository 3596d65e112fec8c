/**
 * Before/after of the agent's CPU live: two builds' agents (`packetbeat-ebpf
 * run`) traced a server in turn under the same paced load, below saturation,
 * alternating which goes first, each after its own warm-up. The load is HTTP
 * (nginx, wrk keep-alive with a delay before each request) or PostgreSQL
 * (`--load pgsql`: pgbench -S at a fixed rate, --rate transactions/s).
 * A round's figure is the agent's CPU seconds (all threads, /proc/PID/stat)
 * per 10,000 of the documents it wrote over the measured load (and 0.5 s after
 * it, for what it still had to write). Prints each build's median and the
 * geometric mean of the paired ratios after/before with a 95% bootstrap
 * interval. Live rounds are far noisier than bench/pipeline-ab's plays (the
 * agent shares 2 cores with the load and the server, and the machine with others):
 * 10 pairs where the rounds spread by ±25% could not show a 10% change.
 * Each round also gives the load generator's p99 latency (pgbench's counts
 * from each transaction's scheduled start): the paired p99 ratios are printed
 * beside (what the change costs the traced application, if anything).
 *   node dist/bench/live-ab.js --before DIR [--after DIR] [--load http|pgsql] [--pairs 10] [--seconds 5] [--warmup 3]
 *                              [--delay-ms 2 [--jitter]] [--rate 2000] [--before-args "ARGS"] [--after-args "ARGS"]
 * (a build is a checkout with its addon, BPF objects and dist/ built; --after defaults to this checkout;
 * --before-args/--after-args: more arguments of `packetbeat-ebpf run` for that side, split at spaces,
 * e.g. `-c drain20.yml`: one build, two settings, when --before is this checkout too;
 * --delay-ms paces HTTP, --rate PostgreSQL)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startPostgres } from '../test/helpers/databases';
import {
  alternatePairs,
  arg,
  choiceArg,
  comparedBuilds,
  cpuSeconds,
  listArg,
  machine,
  paceScript,
  ratioInterval,
  report,
  requireTools,
  runMain,
  sleep,
  startNginx,
  summarize,
  waitLine,
  wholeArg,
  wrk,
} from './common';
import { pgbench, PGBENCH_CLIENTS, PGBENCH_THREADS, pgbenchInit } from './pgbench';

const PORT = 18320;
const LOAD = choiceArg('load', ['http', 'pgsql'] as const, 'http');
const PAIRS = wholeArg('pairs', 10, 2);
const SECONDS = arg('seconds', 5);
const WARMUP_S = arg('warmup', 3);
const DELAY_MS = arg('delay-ms', 2);
/** --jitter: each delay drawn from 0..2×delay-ms (connections that fire at random, not together). */
const JITTER = process.argv.includes('--jitter');
/** pgbench's transactions per second (--load pgsql) */
const RATE = wholeArg('rate', 2000, 1);
const CONNECTIONS = 16;
/** After a load: time for the agent to write what it captured before its documents are counted. */
const SETTLE_MS = 500;
/** Size of the documents file written beforehand (MiB): a round at ~6,000 HTTP requests/s writes ~80. */
const SINK_MIB = 256;

/** Lines (documents) in a file between bytes `from` and `to`. */
function linesBetween(file: string, from: number, to: number): number {
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    let lines = 0;
    for (let at = from; at < to; ) {
      const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, to - at), at);
      if (n === 0) break;
      for (let i = chunk.indexOf(10); i >= 0 && i < n; i = chunk.indexOf(10, i + 1)) lines++;
      at += n;
    }
    return lines;
  } finally {
    fs.closeSync(fd);
  }
}

/** Where process `pid` is in writing its stdout (its file offset, /proc/PID/fdinfo/1). */
function stdoutOffset(pid: number): number {
  const m = /^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/1`, 'utf8'));
  if (!m) throw new Error(`no file position in /proc/${pid}/fdinfo/1`);
  return Number(m[1]);
}

/**
 * The agents' documents file, written through once beforehand: each agent
 * writes over it from the start, into pages the page cache already holds. On
 * this VM (free page reporting) a page the host took back costs its next writer
 * ~5 µs, a cost of the host, not of the agent, which a fresh file put in the
 * agent's system time (and in its write calls, which the kernel does not
 * preempt, between the traced applications).
 */
function prewrittenSink(dir: string): string {
  const file = path.join(dir, 'docs.ndjson');
  const fd = fs.openSync(file, 'w');
  try {
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < SINK_MIB; i++) fs.writeSync(fd, zeros);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** A server under a paced load, in `dir`. */
interface Load {
  /** `run --ports` for the agent */
  ports: string;
  /** what the results say the load was */
  description: string;
  /** the load for `seconds`: what completed, and its p99 latency (µs) */
  run(seconds: number): { requests: number; p99us: number };
  stop(): Promise<void>;
}

async function startLoad(dir: string): Promise<Load> {
  if (LOAD === 'pgsql') {
    const pg = await startPostgres(PORT);
    try {
      pgbenchInit(PORT, 1);
    } catch (err) {
      await pg.stop();
      throw err;
    }
    return {
      ports: `pgsql=${PORT}`,
      description: `pgbench -S -M simple -R ${RATE} -c ${PGBENCH_CLIENTS} -j ${PGBENCH_THREADS} (latency from each transaction's scheduled start), ${SECONDS} s after a ${WARMUP_S} s warm-up`,
      run(seconds) {
        const r = pgbench({ port: PORT, dir, seconds, clients: PGBENCH_CLIENTS, threads: PGBENCH_THREADS, protocol: 'simple', rate: RATE });
        return { requests: r.transactions, p99us: Math.round(r.p99Ms * 1000) };
      },
      stop: () => pg.stop(),
    };
  }
  const nginx = await startNginx(dir, PORT);
  const script = paceScript(dir, DELAY_MS, { jitter: JITTER });
  return {
    ports: `http=${PORT}`,
    description: `wrk -t1 -c${CONNECTIONS} with a ${JITTER ? `random 0–${2 * DELAY_MS}` : DELAY_MS} ms delay before each request, ${SECONDS} s after a ${WARMUP_S} s warm-up`,
    run(seconds) {
      const r = wrk({ port: PORT, connections: CONNECTIONS, seconds, script });
      return { requests: r.requests, p99us: r.p99us };
    },
    stop: () => nginx.stop(),
  };
}

interface Round {
  cpuPer10k: number;
  documents: number;
  requests: number;
  /** the load generator's p99 latency over the measured load (µs) */
  p99us: number;
}

/** One agent of the build at `root` (with `extra` arguments): warm-up, then the measured load. */
async function round(root: string, extra: readonly string[], docs: string, load: Load): Promise<Round> {
  const out = fs.openSync(docs, 'r+'); // over what is there: see prewrittenSink
  const child = spawn(process.execPath, [path.join(root, 'bin/packetbeat-ebpf'), 'run', '--ports', load.ports, ...extra], { stdio: ['ignore', out, 'pipe'] });
  fs.closeSync(out);
  const closed = new Promise((r) => child.once('close', r));
  try {
    await waitLine(child, 'stderr', (l) => l.includes('"capturing"'));
    if (WARMUP_S > 0) load.run(WARMUP_S);
    await sleep(SETTLE_MS);
    const pid = child.pid!;
    const start = stdoutOffset(pid);
    const cpu0 = cpuSeconds(pid);
    const measured = load.run(SECONDS);
    await sleep(SETTLE_MS);
    const cpu = cpuSeconds(pid) - cpu0;
    const documents = linesBetween(docs, start, stdoutOffset(pid));
    if (documents < measured.requests * 0.99) throw new Error(`${root}: ${documents} documents for ${measured.requests} requests (drops?): not a round to compare`);
    return { cpuPer10k: (cpu / documents) * 1e4, documents, requests: measured.requests, p99us: measured.p99us };
  } finally {
    child.kill('SIGINT');
    await closed;
  }
}

async function main(): Promise<void> {
  requireTools(LOAD === 'pgsql' ? { pgbench: 'postgresql', pg_isready: 'postgresql', runuser: 'util-linux' } : { nginx: 'nginx-light', wrk: 'wrk' });
  const { before, after } = comparedBuilds(
    'a checkout with its addon, BPF objects and dist/ built',
    ['bin/packetbeat-ebpf', 'dist/src/cli/main.js'],
    'build it first (npm run build there)',
  );
  // more arguments of `packetbeat-ebpf run` per side
  const beforeArgs = listArg('before-args');
  const afterArgs = listArg('after-args');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-live-ab-'));
  const docs = prewrittenSink(dir);
  const load = await startLoad(dir);
  let runs: { before: Round[]; after: Round[] };
  try {
    runs = await alternatePairs(
      PAIRS,
      (which) => (which === 'before' ? round(before, beforeArgs, docs, load) : round(after, afterArgs, docs, load)),
      (x, y) =>
        `before ${x.cpuPer10k.toFixed(3)} CPU-s/10k, after ${y.cpuPer10k.toFixed(3)}, ratio ${(y.cpuPer10k / x.cpuPer10k).toFixed(3)}; ` +
        `p99 ${x.p99us} → ${y.p99us} µs`,
    );
  } finally {
    await load.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const { before: a, after: b } = runs;
  const ratios = a.map((x, i) => b[i].cpuPer10k / x.cpuPer10k);
  const p99Ratios = a.map((x, i) => b[i].p99us / x.p99us);
  report(
    'live-ab',
    {
      machine: machine(),
      load: load.description,
      before,
      after,
      before_args: beforeArgs,
      after_args: afterArgs,
      pairs: PAIRS,
      requests_per_s: summarize([...a, ...b].map((r) => r.requests / SECONDS)),
      before_cpu_seconds_per_10k: summarize(a.map((r) => r.cpuPer10k)),
      after_cpu_seconds_per_10k: summarize(b.map((r) => r.cpuPer10k)),
      ratio_after_before: { ...summarize(ratios), ...ratioInterval(ratios) },
      // the traced application's p99 latency (wrk's or pgbench's), paired the same way
      before_p99_us: summarize(a.map((r) => r.p99us)),
      after_p99_us: summarize(b.map((r) => r.p99us)),
      p99_ratio_after_before: { ...summarize(p99Ratios), ...ratioInterval(p99Ratios) },
    },
    [],
  );
}

runMain(main);
