/**
 * The agent's user-space cost without the kernel's noise: a recording of the
 * kernel's events for wrk → nginx, or pgbench → PostgreSQL with --protocol pgsql
 * (the agent's own `--record`, made here as root, or an existing one with
 * --file) played through the real pipeline and
 * the console output (NDJSON to /dev/null), several times. Reports CPU
 * microseconds per transaction and per event, transactions/s on one core, and
 * the heap after the plays. Playing is CPU-bound and single-threaded, so the
 * figure is the agent's own cost per transaction, stable enough for before/after
 * comparisons of the decoding path (`--cpu-prof` on node for where it goes).
 * Then plays it again as the agent drains live, asleep --pause-ms (the drain
 * timer's default) before each batch, counting the batches' CPU only: what
 * coming back from sleep costs per transaction on this host. And a probe of
 * that cost: one byte read in each of 2,000 pages after a sleep and back to back.
 *   node dist/bench/pipeline.js [--seconds S] [--plays N] [--paced-plays N] [--pause-ms MS]
 *     [--protocol http|pgsql|mysql|redis] [--file F.pberec [--port P]]
 * (--file: play F; when F does not exist yet, or without --file, record one first: HTTP
 * (paced wrk → nginx) or PostgreSQL (pgbench -S at 2,000 tps), for --seconds)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPipeline, TICK_MS } from '../src/agent/pipeline';
import { decodeBatch } from '../src/capture/events';
import { readRecording } from '../src/capture/recording';
import { drainMinIntervalMs, validateConfig } from '../src/config';
import { createProcessCache } from '../src/conn/process-info';
import { createConsoleOutput } from '../src/outputs/console';
import type { ProtocolName } from '../src/protocols/types';
import { createLogger } from '../src/util/logger';
import { startPostgres } from '../test/helpers/databases';
import { arg, choiceArg, machine, paceScript, REPO, report, requireTools, median, r3, runMain, sleep, startNginx, summarize, waitLine, wholeArg, wrk, type Summary } from './common';
import { pgbench, PGBENCH_CLIENTS, PGBENCH_THREADS, pgbenchInit } from './pgbench';
import { devnullSink, playPaced, playRecording, type Play, type PipelineModules } from './play';

/** The recording's protocol and port: one recorded here is HTTP (wrk → nginx) or PostgreSQL (pgbench -S); --file may be any. */
const PROTOCOL = choiceArg<ProtocolName>('protocol', ['http', 'pgsql', 'mysql', 'redis'], 'http');
const RECORDED_PORTS: Partial<Record<ProtocolName, number>> = { http: 18310, pgsql: 18332 };
const PORT = arg('port', RECORDED_PORTS[PROTOCOL] ?? 0);
const SECONDS = arg('seconds', 4);
const PLAYS = arg('plays', 5);
/** PostgreSQL recorded at the rate of bench/pgsql's fixed-rate rounds. */
const PG_RATE = 2000;

function fileArg(): string | undefined {
  const i = process.argv.indexOf('--file');
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** The agent's --record into `file` around `load` (below saturation: a recording without ring-buffer drops). */
async function recordAround(file: string, ports: string, load: () => unknown): Promise<void> {
  const agent = spawn(process.execPath, [path.join(REPO, 'bin/packetbeat-ebpf'), 'run', '--ports', ports, '--record', file, '--stats-interval', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((res) => agent.once('exit', res));
  try {
    await waitLine(agent, 'stderr', (l) => l.includes('"capturing"'));
    load();
    await sleep(1000);
  } finally {
    agent.kill('SIGINT');
    await exited;
  }
}

/** Record the kernel's events of `seconds` of paced wrk → nginx, or of pgbench -S -R PG_RATE against a private PostgreSQL. */
async function record(dir: string, file: string): Promise<string> {
  if (PROTOCOL === 'pgsql') {
    requireTools({ pgbench: 'postgresql', pg_isready: 'postgresql', runuser: 'util-linux' });
    const pg = await startPostgres(PORT);
    try {
      pgbenchInit(PORT, 1);
      await recordAround(file, `pgsql=${PORT}`, () => pgbench({ port: PORT, dir, seconds: SECONDS, clients: PGBENCH_CLIENTS, threads: PGBENCH_THREADS, protocol: 'simple', rate: PG_RATE }));
    } finally {
      await pg.stop();
    }
    return file;
  }
  requireTools({ nginx: 'nginx-light', wrk: 'wrk' });
  const nginx = await startNginx(dir, PORT);
  try {
    await recordAround(file, `http=${PORT}`, () => wrk({ port: PORT, connections: 16, seconds: SECONDS, script: paceScript(dir, 1) }));
  } finally {
    await nginx.stop();
  }
  return file;
}

/** This build's modules, for the play. */
const THIS_BUILD: PipelineModules = { createPipeline, TICK_MS, decodeBatch, validateConfig, createProcessCache, createConsoleOutput, createLogger };

/** The agent's default drain timer (drain_min_interval_ms left out, kernel hooks). */
const DEFAULT_PAUSE_MS = drainMinIntervalMs(validateConfig({}, 'bench'), 'kernel');
const PAUSE_MS = arg('pause-ms', DEFAULT_PAUSE_MS);
const PACED_PLAYS = wholeArg('paced-plays', 3, 0);

/**
 * What a wake-up costs this host: one byte read in each of PROBE_PAGES pages
 * (a cache line each, in distinct 4 KiB pages), right after `pauseMs` asleep
 * and back to back, as ns per page. Where the difference is large, a process
 * that slept finds its TLB (and caches) cleared: the agent, which sleeps
 * between drains, pays for every page its drain touches again.
 */
async function wakeProbe(pauseMs: number): Promise<{ pages: number; after_sleep_ns_per_page: Summary; back_to_back_ns_per_page: Summary; dense_after_sleep_ns_per_line: Summary }> {
  const PROBE_PAGES = 2000;
  const buf = Buffer.alloc((PROBE_PAGES + 1) * 4096, 1);
  const sparse = (): number => {
    let s = 0;
    for (let i = 0; i < PROBE_PAGES; i++) s += buf[i * 4096 + ((i * 64) & 4095)];
    return s;
  };
  // as many cache lines, packed into 32 pages: what the caches cost without the TLB
  const dense = (): number => {
    let s = 0;
    for (let i = 0; i < PROBE_PAGES; i++) s += buf[i * 64];
    return s;
  };
  const time = (f: () => number): number => {
    const t0 = process.hrtime.bigint();
    if (f() < 0) throw new Error('unreachable'); // keeps the reads
    return Number(process.hrtime.bigint() - t0) / PROBE_PAGES;
  };
  for (let i = 0; i < 50; i++) {
    time(sparse);
    time(dense);
  }
  const after: number[] = [];
  const hot: number[] = [];
  const denseAfter: number[] = [];
  for (let i = 0; i < 60; i++) {
    await sleep(pauseMs);
    after.push(time(sparse));
    hot.push(time(sparse));
    await sleep(pauseMs);
    denseAfter.push(time(dense));
  }
  return { pages: PROBE_PAGES, after_sleep_ns_per_page: summarize(after), back_to_back_ns_per_page: summarize(hot), dense_after_sleep_ns_per_line: summarize(denseAfter) };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pipeline-bench-'));
  try {
    const given = fileArg();
    const exists = given !== undefined && fs.existsSync(given);
    if (!exists && RECORDED_PORTS[PROTOCOL] === undefined) throw new Error(`--protocol ${PROTOCOL}: only HTTP and PostgreSQL are recorded here; play a recording of it with --file F.pberec --port P`);
    if (PORT <= 0) throw new Error('--port P: the port the recording\'s protocol ran on');
    const file = exists ? given : await record(dir, given ?? path.join(dir, `${PROTOCOL}.pberec`));
    const recording = readRecording(file);
    const sink = devnullSink();
    const target = { port: PORT, protocol: PROTOCOL };
    const plays: Play[] = [];
    playRecording(THIS_BUILD, recording, target, sink); // warm-up: JIT
    for (let i = 0; i < PLAYS; i++) {
      const p = playRecording(THIS_BUILD, recording, target, sink);
      plays.push(p);
      process.stderr.write(`play ${i + 1}/${PLAYS}: ${p.transactions} txns, ${p.events} events, ${(p.cpuUs / p.transactions).toFixed(2)} cpu-us/txn\n`);
      await new Promise((r) => setImmediate(r));
    }
    const paced: Play[] = [];
    for (let i = 0; i < PACED_PLAYS; i++) {
      const p = await playPaced(THIS_BUILD, recording, target, sink, PAUSE_MS);
      paced.push(p);
      process.stderr.write(`paced play ${i + 1}/${PACED_PLAYS} (${PAUSE_MS} ms before each batch): ${(p.cpuUs / p.transactions).toFixed(2)} cpu-us/txn\n`);
    }
    sink.destroy();
    if (plays.some((p) => p.transactions === 0)) throw new Error('the recording holds no transactions');
    const probe = await wakeProbe(PAUSE_MS);
    const bytes = recording.batches.reduce((n, b) => n + b.length, 0);
    const perTxn = (p: Play): number => p.cpuUs / p.transactions;
    report(PROTOCOL === 'http' ? 'pipeline' : `pipeline-${PROTOCOL}`, {
      machine: machine(),
      recording: { protocol: PROTOCOL, source: fileArg() ?? (PROTOCOL === 'pgsql' ? `pgbench -S -M simple -c 8 -j 2 -R ${PG_RATE} -T ${SECONDS}` : `wrk -t1 -c16 -d${SECONDS}s (1 ms pace) → nginx "hello\\n"`), bytes, batches: recording.batches.length, transactions: plays[0].transactions, events: plays[0].events },
      plays: PLAYS,
      cpu_us_per_txn: summarize(plays.map(perTxn)),
      cpu_seconds_per_10k_txns: { ...summarize(plays.map((p) => perTxn(p) * 1e-2)), target: 0.2 },
      cpu_us_per_event: summarize(plays.map((p) => p.cpuUs / p.events)),
      txns_per_s_one_core: summarize(plays.map((p) => p.transactions / (p.cpuUs / 1e6))),
      heap_mib_after: summarize(plays.map((p) => p.heapMiB)),
      paced: PACED_PLAYS === 0 ? null : { pause_ms: PAUSE_MS, plays: PACED_PLAYS, cpu_us_per_txn: summarize(paced.map(perTxn)), vs_back_to_back: r3(median(paced.map(perTxn)) / median(plays.map(perTxn))) },
      wake_probe: probe,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
