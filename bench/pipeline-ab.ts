/**
 * Before/after of the agent's user-space work: one recording of the kernel's
 * events (bench/pipeline's, or the agent's own `--record`) played through two
 * builds, each pair of plays in two fresh processes, alternating which goes
 * first. A build is a checkout whose dist/ is compiled (`npx tsc -p
 * tsconfig.json`); the modules the play needs are loaded from it.
 *
 * Why processes: two builds played in one process share V8's heap and the
 * inline caches of Node's own functions (Buffer's methods, streams), and there
 * a change that alters object shapes measured 20% worse in one pairing and 3%
 * better in another. Each process plays the recording --plays times and
 * reports the median of all but the first (the JIT's warm-up).
 *
 * Prints each build's median CPU µs per transaction and the geometric mean of
 * the paired ratios after/before, with a 95% bootstrap interval: the interval,
 * not the mean, says whether a change is real (one build against itself, 12
 * pairs in a noisy hour here: 0.967 [0.862, 1.088]).
 *   node dist/bench/pipeline-ab.js --file F.pberec --before DIR [--after DIR] [--pairs 12] [--plays 6]
 *     [--port 18310] [--protocol http|pgsql|mysql|redis]   (the recording's port and protocol)
 *     [--pause-ms MS [--batches N]]   (paced plays: MS asleep before each batch, as the agent
 *     drains live, where this host's wake-up cost weighs; only the first N batches)
 * (--after defaults to this checkout)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as PipelineModule from '../src/agent/pipeline';
import type * as EventsModule from '../src/capture/events';
import type * as RecordingModule from '../src/capture/recording';
import type * as ConfigModule from '../src/config';
import type * as ProcessModule from '../src/conn/process-info';
import type * as ConsoleModule from '../src/outputs/console';
import type { ProtocolName } from '../src/protocols/types';
import type * as LoggerModule from '../src/util/logger';
import { alternatePairs, arg, choiceArg, comparedBuilds, machine, ratioInterval, report, runMain, stringArg, summarize, wholeArg } from './common';
import { devnullSink, playPaced, playRecording, type PipelineModules } from './play';

/** The recording's port (bench/pipeline records HTTP on 18310) and what it carries. */
const PORT = arg('port', 18310);
const PROTOCOL = choiceArg<ProtocolName>('protocol', ['http', 'pgsql', 'mysql', 'redis'], 'http');
const PAIRS = wholeArg('pairs', 12, 2);
const PLAYS = wholeArg('plays', 6, 2, ' (the first is not counted)');
/** 0: plays back to back; else each counted play asleep this long before each batch (playPaced), as the agent drains live. */
const PAUSE_MS = arg('pause-ms', 0);
/** Paced plays take the first N batches only (a whole recording at 5 ms a batch can take minutes); 0: all. */
const BATCHES = PAUSE_MS > 0 ? wholeArg('batches', 0, 0) : 0;

/** In a child: play the recording through the build at `root`; print the median CPU µs per transaction. */
async function playChild(root: string, file: string): Promise<void> {
  const load = <T>(p: string): T => require(path.join(root, 'dist/src', p)) as T;
  const { createPipeline, TICK_MS } = load<typeof PipelineModule>('agent/pipeline');
  const modules: PipelineModules = {
    createPipeline,
    TICK_MS,
    decodeBatch: load<typeof EventsModule>('capture/events').decodeBatch,
    validateConfig: load<typeof ConfigModule>('config').validateConfig,
    createProcessCache: load<typeof ProcessModule>('conn/process-info').createProcessCache,
    createConsoleOutput: load<typeof ConsoleModule>('outputs/console').createConsoleOutput,
    createLogger: load<typeof LoggerModule>('util/logger').createLogger,
  };
  const whole = load<typeof RecordingModule>('capture/recording').readRecording(file);
  const recording = BATCHES > 0 ? { ...whole, batches: whole.batches.slice(0, BATCHES) } : whole;
  const target = { port: PORT, protocol: PROTOCOL };
  const perTxn: number[] = [];
  for (let i = 0; i < PLAYS; i++) {
    const sink = devnullSink();
    // the first play (not counted) warms the JIT up back to back
    const p = PAUSE_MS > 0 && i > 0 ? await playPaced(modules, recording, target, sink, PAUSE_MS) : playRecording(modules, recording, target, sink);
    if (p.transactions === 0) throw new Error(`no ${PROTOCOL} transaction in ${file} on port ${PORT} (--port, --protocol)`);
    perTxn.push(p.cpuUs / p.transactions);
    sink.destroy();
    await new Promise((r) => setImmediate(r));
  }
  const rest = perTxn.slice(1).sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ cpuUsPerTxn: rest[rest.length >> 1] })}\n`);
}

function playIn(root: string, file: string): number {
  const out = execFileSync(process.execPath, [__filename, '--child', root, '--file', file, '--plays', String(PLAYS), '--port', String(PORT), '--protocol', PROTOCOL, '--pause-ms', String(PAUSE_MS), '--batches', String(BATCHES)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return (JSON.parse(out.trim().split('\n').pop()!) as { cpuUsPerTxn: number }).cpuUsPerTxn;
}

async function main(): Promise<void> {
  const child = stringArg('child');
  const file = stringArg('file');
  if (!file || !fs.existsSync(file)) throw new Error('--file F.pberec: a recording (node dist/bench/pipeline.js --file F.pberec records one)');
  if (child !== undefined) return playChild(child, file);
  const { before, after } = comparedBuilds('a checkout with dist/ compiled', ['dist/src/agent/pipeline.js'], 'compile it first (npx tsc -p tsconfig.json there)');
  const { before: a, after: b } = await alternatePairs(
    PAIRS,
    (which) => playIn(which === 'before' ? before : after, file),
    (x, y) => `before ${x.toFixed(2)} µs/txn, after ${y.toFixed(2)}, ratio ${(y / x).toFixed(3)}`,
  );
  const ratios = a.map((x, i) => b[i] / x);
  report(
    'pipeline-ab',
    {
      machine: machine(),
      recording: file,
      protocol: PROTOCOL,
      pause_ms: PAUSE_MS,
      batches: BATCHES > 0 ? BATCHES : 'all',
      before,
      after,
      pairs: PAIRS,
      plays_per_process: PLAYS,
      before_cpu_us_per_txn: summarize(a),
      after_cpu_us_per_txn: summarize(b),
      ratio_after_before: { ...summarize(ratios), ...ratioInterval(ratios) },
    },
    [],
  );
}

runMain(main);
