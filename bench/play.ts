/**
 * One play of a recording of the kernel's events through a fresh pipeline and
 * the console output, on the recording's clock: bench/pipeline plays this
 * build, bench/pipeline-ab another build's modules (loaded from its dist/).
 */
import * as fs from 'node:fs';
import { Writable } from 'node:stream';
import type { createPipeline, TICK_MS } from '../src/agent/pipeline';
import type { decodeBatch } from '../src/capture/events';
import type { Recording } from '../src/capture/recording';
import type { validateConfig } from '../src/config';
import type { createProcessCache } from '../src/conn/process-info';
import type { createConsoleOutput } from '../src/outputs/console';
import type { ProtocolName } from '../src/protocols/types';
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

/** Which protocol the recording's port carries (bench/pipeline records HTTP). */
export interface PlayTarget {
  port: number;
  protocol?: ProtocolName;
}

/**
 * Where a play's documents go: /dev/null, written synchronously, its descriptor
 * shown as `fd`, as the agent's stdout is when it is a file (Node's
 * SyncWriteStream): a build whose console output writes such descriptors
 * itself does so here too.
 */
export function devnullSink(): Writable & { fd: number } {
  const fd = fs.openSync('/dev/null', 'w');
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      fs.writeSync(fd, chunk);
      done();
    },
    destroy(err, done) {
      fs.closeSync(fd);
      done(err);
    },
  });
  return Object.assign(sink, { fd });
}

/** A fresh pipeline on the recording's clock, and how to feed it one batch. */
function player(m: PipelineModules, recording: Recording, target: PlayTarget, sink: Writable) {
  const config = m.validateConfig({ protocols: { [target.protocol ?? 'http']: { ports: [target.port] } } }, 'bench');
  const { wallMs, monoNs } = recording.header;
  let clockNs = 0;
  let lastTickNs = 0;
  const now = () => wallMs + (clockNs - monoNs) / 1e6;
  const pipeline = m.createPipeline({
    config,
    outputs: [m.createConsoleOutput({ stream: sink, maxQueuedBytes: Infinity })],
    processes: m.createProcessCache({ now }),
    logger: m.createLogger('silent'),
    now,
    monoNowNs: () => clockNs,
    toWallMs: (ns) => wallMs + (ns - monoNs) / 1e6,
  });
  return {
    feed(batch: Buffer): void {
      m.decodeBatch(batch, (e) => {
        if (e.tsNs > clockNs) clockNs = e.tsNs;
        pipeline.onEvent(e);
      });
      pipeline.onBatchEnd();
      if (clockNs - lastTickNs >= m.TICK_MS * 1e6) {
        lastTickNs = clockNs;
        pipeline.tick();
      }
    },
    end(cpuUs: number): Play {
      pipeline.flush();
      const s = pipeline.stats();
      return { cpuUs, transactions: s.transactions, events: s.events, heapMiB: process.memoryUsage().heapUsed / 2 ** 20 };
    },
  };
}

const cpuSinceUs = (t0: NodeJS.CpuUsage): number => {
  const t = process.cpuUsage(t0);
  return t.user + t.system;
};

/** Play the whole recording back to back, documents to `sink`: the CPU it took and what it saw. */
export function playRecording(m: PipelineModules, recording: Recording, target: PlayTarget, sink: Writable): Play {
  const p = player(m, recording, target, sink);
  const t0 = process.cpuUsage();
  for (const batch of recording.batches) p.feed(batch);
  return p.end(cpuSinceUs(t0));
}

/**
 * Play it as the agent drains live: `pauseMs` asleep before each batch (the
 * drain timer's interval), counting only the CPU of the batches' work. On a
 * host where a process that slept finds its TLB or caches cold, this costs more
 * per transaction than the back-to-back play, by what each wake-up costs.
 */
export async function playPaced(m: PipelineModules, recording: Recording, target: PlayTarget, sink: Writable, pauseMs: number): Promise<Play> {
  const p = player(m, recording, target, sink);
  let cpuUs = 0;
  for (const batch of recording.batches) {
    await new Promise((r) => setTimeout(r, pauseMs));
    const t0 = process.cpuUsage();
    p.feed(batch);
    cpuUs += cpuSinceUs(t0);
  }
  const t0 = process.cpuUsage();
  const play = p.end(0);
  return { ...play, cpuUs: cpuUs + cpuSinceUs(t0) };
}
