import * as fs from 'node:fs';
import { decodeBatch } from './events';
import { EVENT_FIELDS, EVENT_HEADER_SIZE, INFER_EVENTS, layoutMismatches, type KernelCounters, COUNTER_NAMES, Verdict } from './layout';
import type { CaptureSink, CaptureSource } from './source';

/**
 * Recordings of ring-buffer batches exactly as the addon delivered them, so
 * the pipeline can be tested on real kernel events without root:
 *   "PBEREC01" | u32 json length | json { headerSize, fields, wallMs, monoNs } | (u32 length | batch)*
 */
const MAGIC = Buffer.from('PBEREC01');

export interface RecordingHeader {
  headerSize: number;
  fields: Record<string, { offset: number; size: number }>;
  /** Wall clock (ms) and monotonic clock (ns) sampled together when recording began. */
  wallMs: number;
  monoNs: number;
}

export class RecordingError extends Error {}

export interface Recorder {
  write(batch: Buffer): void;
  close(): void;
}

/** Append batches to a new recording file (synchronous: the agent's own fd, never traced). */
export function createRecorder(file: string): Recorder {
  const fd = fs.openSync(file, 'w');
  const header: RecordingHeader = {
    headerSize: EVENT_HEADER_SIZE,
    fields: EVENT_FIELDS,
    wallMs: Date.now(),
    monoNs: Number(process.hrtime.bigint()),
  };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  fs.writeSync(fd, Buffer.concat([MAGIC, len, json]));
  let open = true;
  return {
    write(batch) {
      if (!open) return;
      const n = Buffer.alloc(4);
      n.writeUInt32LE(batch.length);
      fs.writeSync(fd, n);
      fs.writeSync(fd, batch);
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

export interface Recording {
  header: RecordingHeader;
  batches: Buffer[];
}

export function readRecording(file: string): Recording {
  const buf = fs.readFileSync(file);
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new RecordingError(`${file} is not a packetbeat-ebpf event recording`);
  const jsonLen = buf.readUInt32LE(8);
  if (12 + jsonLen > buf.length) throw new RecordingError(`${file}: header runs past the end of the file`);
  const header = JSON.parse(buf.toString('utf8', 12, 12 + jsonLen)) as RecordingHeader;
  const bad = layoutMismatches({ ...header, payloadLimit: 0, payloadDefault: 0, tailLimit: 0, inferEvents: INFER_EVENTS, counterCount: COUNTER_NAMES.length, verdicts: { ...Verdict } });
  if (bad.length > 0) throw new RecordingError(`${file} was recorded with another event layout: ${bad.join('; ')}`);
  const batches: Buffer[] = [];
  let at = 12 + jsonLen;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw new RecordingError(`${file}: truncated frame at byte ${at}`);
    const n = buf.readUInt32LE(at);
    if (at + 4 + n > buf.length) throw new RecordingError(`${file}: truncated batch at byte ${at}`);
    batches.push(buf.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return { header, batches };
}

/** A capture source that plays a recording (all at once, in order). */
export function createRecordingSource(recording: Recording): CaptureSource {
  let events = 0;
  return {
    mode: 'recording',
    start(sink: CaptureSink) {
      for (const b of recording.batches) {
        decodeBatch(b, (e) => {
          events++;
          sink.onEvent(e);
        });
        sink.onBatchEnd();
      }
    },
    flush: () => 0,
    counters(): KernelCounters {
      const c = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as KernelCounters;
      c.events = events;
      return c;
    },
    close() {},
  };
}
