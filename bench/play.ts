/**
 * One play of a recording of the kernel's events through a fresh pipeline and
 * the console output, on the recording's clock: bench/pipeline plays this
 * build, bench/pipeline-ab another build's modules (loaded from its dist/).
 */
import type * as fs from 'node:fs';
import type { createPipeline, TICK_MS } from '../src/agent/pipeline';
import type { decodeBatch } from '../src/capture/events';
import type { Recording } from '../src/capture/recording';
import type { validateConfig } from '../src/config';
import type { createProcessCache } from '../src/conn/process-info';
import type { createConsoleOutput } from '../src/outputs/console';
import type { createLogger } from '../src/util/logger';

/** What a play needs from a build. */
export interface PipelineModules {
  createPipeline: typeof createPipeline;
  TICK_MS: typeof TICK_MS;
  decodeBatch: typeof decodeBatch;
  validateConfig: typeof validateConfig;
  createProcessCache: typeof createProcessCache;
  createConsoleOutput: typeof createConsoleOutput;
  createLogger: typeof createLogger;
}

export interface Play {
  cpuUs: number;
  transactions: number;
  events: number;
  heapMiB: number;
}

/** Play the whole recording (HTTP on `port`), documents to `devnull`: the CPU it took and what it saw. */
export function playRecording(m: PipelineModules, recording: Recording, port: number, devnull: fs.WriteStream): Play {
  const config = m.validateConfig({ protocols: { http: { ports: [port] } } }, 'bench');
  const { wallMs, monoNs } = recording.header;
  let clockNs = 0;
  let lastTickNs = 0;
  const now = () => wallMs + (clockNs - monoNs) / 1e6;
  const pipeline = m.createPipeline({
    config,
    outputs: [m.createConsoleOutput({ stream: devnull, maxQueuedBytes: Infinity })],
    processes: m.createProcessCache({ now }),
    logger: m.createLogger('silent'),
    now,
    monoNowNs: () => clockNs,
    toWallMs: (ns) => wallMs + (ns - monoNs) / 1e6,
  });
  const t0 = process.cpuUsage();
  for (const batch of recording.batches) {
    m.decodeBatch(batch, (e) => {
      if (e.tsNs > clockNs) clockNs = e.tsNs;
      pipeline.onEvent(e);
    });
    pipeline.onBatchEnd();
    if (clockNs - lastTickNs >= m.TICK_MS * 1e6) {
      lastTickNs = clockNs;
      pipeline.tick();
    }
  }
  pipeline.flush();
  const t = process.cpuUsage(t0);
  const s = pipeline.stats();
  return { cpuUs: t.user + t.system, transactions: s.transactions, events: s.events, heapMiB: process.memoryUsage().heapUsed / 2 ** 20 };
}
