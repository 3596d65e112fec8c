import * as fs from 'node:fs';
import { CaptureFileError } from '../capture/pcap/file';
import { createPcapSource, type PcapStats } from '../capture/pcap/source';
import type { Config } from '../config';
import { createProcessCache } from '../conn/process-info';
import type { Output } from '../outputs/types';
import { createModules, portMap } from '../protocols/registry';
import type { Logger } from '../util/logger';
import { createPipeline, TICK_MS, type PipelineStats } from './pipeline';

export interface ReplayResult {
  pipeline: PipelineStats;
  capture: PcapStats;
}

export class ReplayError extends Error {}

/**
 * Replay a pcap/pcapng capture through the same pipeline as live capture, on the
 * capture's own clock (timeouts and @timestamp come from the packets).
 */
export async function replayCapture(
  file: string,
  config: Config,
  outputs: Output[],
  logger: Logger,
  { flush = true }: { flush?: boolean } = {},
): Promise<ReplayResult> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new ReplayError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const ports = portMap(config, createModules(config));
  let clockNs = 0;
  let lastTickNs = 0;
  let baseMs = 0;
  const pipeline = createPipeline({
    config,
    outputs,
    // wire traffic has no processes; the cache is never asked
    processes: createProcessCache(),
    logger,
    now: () => baseMs + clockNs / 1e6,
    monoNowNs: () => clockNs,
    toWallMs: (ns) => baseMs + ns / 1e6,
  });
  const source = createPcapSource(buf, {
    isServerPort: (port) => ports.has(port),
    inferUnknown: config.infer_protocols,
    onTime(ns) {
      if (baseMs === 0) baseMs = source.base.sec * 1000 + source.base.nsec / 1e6;
      clockNs = Math.max(clockNs, ns);
      if (clockNs - lastTickNs >= TICK_MS * 1e6) {
        lastTickNs = clockNs;
        pipeline.tick();
      }
    },
  });
  try {
    source.start(pipeline);
  } catch (err) {
    if (err instanceof CaptureFileError) throw new ReplayError(`${file}: ${err.message}`);
    throw err;
  }
  pipeline.flush();
  // (the CLI flushes with a bound and closes the outputs itself)
  if (flush) await Promise.all(outputs.map((o) => o.flush()));
  return { pipeline: pipeline.stats(), capture: source.stats() };
}
