import type { Writable } from 'node:stream';
import { documentJson } from '../publish/document';
import type { Output, OutputStats } from './types';

export interface ConsoleOutputOptions {
  stream?: Writable;
  pretty?: boolean;
  /** Past this many bytes waiting in the stream, the capture pauses (backpressure). */
  highWaterBytes?: number;
  /** Bytes allowed to wait in the stream before documents are dropped (and counted). */
  maxQueuedBytes?: number;
}

/** NDJSON on stdout: one document per line, one write per batch. */
export function createConsoleOutput({
  stream = process.stdout,
  pretty = false,
  highWaterBytes = 8 * 1024 * 1024,
  maxQueuedBytes = 256 * 1024 * 1024,
}: ConsoleOutputOptions = {}): Output {
  const stats: OutputStats = { published: 0, dropped: 0, queued: 0 };
  let broken = false;
  stream.on('error', () => {
    broken = true; // e.g. EPIPE when `| head` exits: stop writing, keep counting
  });
  return {
    name: 'console',
    publish(docs) {
      if (docs.length === 0) return;
      if (broken || stream.writableLength > maxQueuedBytes) {
        stats.dropped += docs.length;
        return;
      }
      let text = '';
      for (const d of docs) text += (pretty ? JSON.stringify(d, null, 2) : documentJson(d)) + '\n';
      stream.write(text);
      stats.published += docs.length;
    },
    flush() {
      if (broken || stream.writableLength === 0) return Promise.resolve();
      return new Promise((resolve) => stream.once('drain', () => resolve()));
    },
    full: () => !broken && stream.writableLength > highWaterBytes,
    stats: () => ({ ...stats, queued: stream.writableLength }),
  };
}
