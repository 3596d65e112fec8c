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
import { readRecording } from '../src/capture/recording';
import { validateConfig } from '../src/config';
import { createProcessCache } from '../src/conn/process-info';
import { createConsoleOutput } from '../src/outputs/console';
import { createLogger } from '../src/util/logger';
import { arg, machine, paceScript, REPO, report, requireTools, runMain, startNginx, summarize, waitLine, wrk } from './common';
import { playRecording, type Play, type PipelineModules } from './play';

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

/** This build's modules, for the play. */
const THIS_BUILD: PipelineModules = { createPipeline, TICK_MS, decodeBatch, validateConfig, createProcessCache, createConsoleOutput, createLogger };

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pipeline-bench-'));
  try {
    const given = fileArg();
    const file = given !== undefined && fs.existsSync(given) ? given : await record(dir, given ?? path.join(dir, 'wrk.pberec'));
    const recording = readRecording(file);
    const devnull = fs.createWriteStream('/dev/null');
    const plays: Play[] = [];
    playRecording(THIS_BUILD, recording, PORT, devnull); // warm-up: JIT
    for (let i = 0; i < PLAYS; i++) {
      const p = playRecording(THIS_BUILD, recording, PORT, devnull);
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
