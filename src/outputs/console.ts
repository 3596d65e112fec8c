import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import * as tty from 'node:tty';
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

/**
 * The stream's descriptor when Node writes it synchronously anyway: a regular
 * file or a character device that is not a terminal (/dev/null), which Node's
 * stdout writes through a SyncWriteStream (libuv sees a file). A batch is then
 * written with fs.writeSync of its text: the stream would first make a Buffer
 * of it (a second pass over the text, and an allocation) and take its way
 * through Writable's code. Measured (bench/pipeline-ab, 12 pairs, user-space
 * CPU per transaction played back to back): HTTP ×0.949 [0.899, 1.003],
 * PostgreSQL ×0.901 [0.831, 0.973]; live (live-ab, 10 pairs) HTTP ×0.943
 * [0.833, 1.053], PostgreSQL within its noise. Pipes, sockets and terminals
 * keep the stream, which writes text natively.
 */
export function syncFileDescriptor(stream: Writable): number | undefined {
  const fd = (stream as { fd?: unknown }).fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return undefined;
  try {
    const st = fs.fstatSync(fd);
    return st.isFile() || (st.isCharacterDevice() && !tty.isatty(fd)) ? fd : undefined;
  } catch {
    return undefined; // closed or not ours: the stream reports what is wrong
  }
}

/** All of `text` to `fd`, synchronously; a short write (a signal, a full disk) goes on from where it stopped. */
function writeAllSync(fd: number, text: string): void {
  const written = fs.writeSync(fd, text);
  if (written === Buffer.byteLength(text)) return;
  const bytes = Buffer.from(text);
  for (let off = written; off < bytes.length; ) off += fs.writeSync(fd, bytes, off);
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
  const fd = syncFileDescriptor(stream);
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
      if (fd === undefined) stream.write(text);
      else {
        try {
          writeAllSync(fd, text);
        } catch {
          // as the stream's 'error' would (EIO, ENOSPC, a file closed under us): stop writing, keep counting
          broken = true;
          stats.dropped += docs.length;
          return;
        }
      }
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
