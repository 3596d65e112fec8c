/**
 * The agent's user-space cost without the kernel's noise: a recording of the
 * kernel's events for wrk → nginx (the agent's own `--record`, made here as
 * root, or an existing one with --file) played through the real pipeline and
 * the console output (NDJSON to /dev/null), several times. Reports CPU
 * microseconds per transaction and per event, transactions/s on one core, and
 * the heap after the plays. Playing is CPU-bound and single-threaded, so the
 * figure is the agent's own cost per transaction, stable enough for before/after
 * comparisons of the decoding path (`--cpu-prof` on node for where it goes).
 *   node dist/bench/pipeline.js [--seconds S] [--plays N] [--file F.pberec]
 * (--file: play F; when F does not exist yet, record it there first)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPipeline, TICK_MS } from '../src/agent/pipeline';
import { decodeBatch } from '../src/capture/events';
import { readRecording, type Recording } from '../src/capture/recording';
import { validateConfig } from '../src/config';
import { createProcessCache } from '../src/conn/process-info';
import { createConsoleOutput } from '../src/outputs/console';
import { createLogger } from '../src/util/logger';
import { arg, machine, paceScript, REPO, report, requireTools, runMain, startNginx, summarize, waitLine, wrk } from './common';

const PORT = 18310;
const SECONDS = arg('seconds', 4);
const PLAYS = arg('plays', 5);

function fileArg(): string | undefined {
  const i = process.argv.indexOf('--file');
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** Record the kernel's events of `seconds` of paced wrk → nginx with the agent's --record. */
async function record(dir: string, file: string): Promise<string> {
  requireTools({ nginx: 'nginx-light', wrk: 'wrk' });
  const nginx = await startNginx(dir, PORT);
  try {
    const agent = spawn(process.execPath, [path.join(REPO, 'bin/packetbeat-ebpf'), 'run', '--ports', `http=${PORT}`, '--record', file, '--stats-interval', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await waitLine(agent, 'stderr', (l) => l.includes('"capturing"'));
    // paced below saturation: a recording without ring-buffer drops
    wrk({ port: PORT, connections: 16, seconds: SECONDS, script: paceScript(dir, 1) });
    await new Promise((res) => setTimeout(res, 1000));
    const exited = new Promise((res) => agent.once('exit', res));
    agent.kill('SIGINT');
    await exited;
  } finally {
    await nginx.stop();
  }
  return file;
}

interface Play {
  cpuUs: number;
  transactions: number;
  events: number;
  heapMiB: number;
}

/** One play of the whole recording through a fresh pipeline, on the recording's clock. */
function play(recording: Recording, devnull: fs.WriteStream): Play {
  const config = validateConfig({ protocols: { http: { ports: [PORT] } } }, 'bench');
  const { wallMs, monoNs } = recording.header;
  let clockNs = 0;
  let lastTickNs = 0;
  const now = () => wallMs + (clockNs - monoNs) / 1e6;
  const pipeline = createPipeline({
    config,
    outputs: [createConsoleOutput({ stream: devnull, maxQueuedBytes: Infinity })],
    processes: createProcessCache({ now }),
    logger: createLogger('silent'),
    now,
    monoNowNs: () => clockNs,
    toWallMs: (ns) => wallMs + (ns - monoNs) / 1e6,
  });
  const t0 = process.cpuUsage();
  for (const batch of recording.batches) {
    decodeBatch(batch, (e) => {
      if (e.tsNs > clockNs) clockNs = e.tsNs;
      pipeline.onEvent(e);
    });
    pipeline.onBatchEnd();
    if (clockNs - lastTickNs >= TICK_MS * 1e6) {
      lastTickNs = clockNs;
      pipeline.tick();
    }
  }
  pipeline.flush();
  const t = process.cpuUsage(t0);
  const s = pipeline.stats();
  return { cpuUs: t.user + t.system, transactions: s.transactions, events: s.events, heapMiB: process.memoryUsage().heapUsed / 2 ** 20 };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pipeline-bench-'));
  try {
    const given = fileArg();
    const file = given !== undefined && fs.existsSync(given) ? given : await record(dir, given ?? path.join(dir, 'wrk.pberec'));
    const recording = readRecording(file);
    const devnull = fs.createWriteStream('/dev/null');
    const plays: Play[] = [];
    play(recording, devnull); // warm-up: JIT
    for (let i = 0; i < PLAYS; i++) {
      const p = play(recording, devnull);
      plays.push(p);
      process.stderr.write(`play ${i + 1}/${PLAYS}: ${p.transactions} txns, ${p.events} events, ${(p.cpuUs / p.transactions).toFixed(2)} cpu-us/txn\n`);
      await new Promise((r) => setImmediate(r)); // let the console stream drain
    }
    devnull.end();
    if (plays.some((p) => p.transactions === 0)) throw new Error('the recording holds no transactions');
    const bytes = recording.batches.reduce((n, b) => n + b.length, 0);
    report('pipeline', {
      machine: machine(),
      recording: { source: fileArg() ?? `wrk -t1 -c16 -d${SECONDS}s (1 ms pace) → nginx "hello\\n"`, bytes, batches: recording.batches.length, transactions: plays[0].transactions, events: plays[0].events },
      plays: PLAYS,
      cpu_us_per_txn: summarize(plays.map((p) => p.cpuUs / p.transactions)),
      cpu_seconds_per_10k_txns: { ...summarize(plays.map((p) => (p.cpuUs / p.transactions) * 1e-2)), target: 0.2 },
      cpu_us_per_event: summarize(plays.map((p) => p.cpuUs / p.events)),
      txns_per_s_one_core: summarize(plays.map((p) => p.transactions / (p.cpuUs / 1e6))),
      heap_mib_after: summarize(plays.map((p) => p.heapMiB)),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
