/**
 * The delivery layer of the backend outputs (Elasticsearch, OpenSearch): documents
 * become records (id, index, JSON), records become batches (by count, bytes or
 * time), batches go to the backend one at a time in sequence order.
 *
 * - A failed request (connection, timeout, 429/5xx, auth) is retried with
 *   exponential backoff; documents the backend refuses for their content are
 *   counted and one sample logged, never retried.
 * - Past `queueMaxBytes` in memory, the oldest batches go to the disk spool
 *   (bounded); the sender reads them back in order. A spool file is deleted once
 *   the backend acknowledged its batch; what is on disk at start is sent first.
 * - Past the memory bound with nowhere to spool, `full()` pauses the capture; past
 *   twice the bound, new documents are dropped and counted.
 * - `flush()` resolves when every batch so far is acknowledged, or on disk when the
 *   backend is failing; `close()` puts what is left on disk and reports it.
 */
import type { TxnDocument } from '../../publish/document';
import type { Logger } from '../../util/logger';
import type { Output, OutputStats } from '../types';
import { recordBytes, toRecord } from './records';
import { openSpool, type Spool, type SpoolEntry } from './spool';
import type { BulkSink, DeliveryRecord, Rejection, SendResult } from './types';

/** New documents are dropped past this many times the memory bound. */
const HARD_LIMIT_FACTOR = 2;
/** At most one log line per this interval for repeated failures/rejections/drops. */
const REPEAT_LOG_MS = 60_000;
/** A logged sample of a rejected document keeps this many characters. */
const SAMPLE_CHARS = 2048;

export interface DeliveryOptions {
  name: string;
  sink: BulkSink;
  logger: Logger;
  /** The target index/data stream of a document. */
  indexOf(doc: TxnDocument): string;
  batchMaxDocs: number;
  batchMaxBytes: number;
  /** A batch is sent at most this long after its first document. */
  flushIntervalMs: number;
  /** Bytes of documents held in memory before batches go to the spool. */
  queueMaxBytes: number;
  /** Disk spool; undefined: none (past the memory bound, backpressure then drops). */
  spool?: { dir: string; maxBytes: number };
  backoffInitMs: number;
  backoffMaxMs: number;
}

export interface DeliveryStats extends OutputStats {
  /** Documents created by the backend. */
  created: number;
  /** Documents the backend already had (409 on `create`): delivered before, counted in published. */
  duplicates: number;
  /** Documents refused for their content (mapping errors, 400): counted, never retried. */
  rejected: number;
  /** Documents sent again after a failed attempt. */
  retried: number;
  /** Bulk requests that failed as a whole. */
  failed_requests: number;
  /** Documents written to the spool (cumulative). */
  spooled: number;
  /** Documents and bytes on disk now. */
  spool_docs: number;
  spool_bytes: number;
  /** Spool files that failed their checks (moved to corrupt/, readable documents still sent). */
  spool_corrupt_files: number;
  /** Spool writes that failed (disk full, I/O error). */
  spool_write_errors: number;
  queued_bytes: number;
}

interface Batch {
  seq: number;
  /** In memory; undefined when only on disk. */
  records?: DeliveryRecord[];
  docs: number;
  bytes: number;
  /** On disk (complete). */
  entry?: SpoolEntry;
  /** Being written to disk. */
  writing?: Promise<void>;
  inFlight: boolean;
}

interface Waiter {
  target: number;
  resolve: () => void;
}

export interface DeliveryOutput extends Output {
  full(): boolean;
  close(): Promise<void>;
  stats(): DeliveryStats;
}

export function createDeliveryOutput(options: DeliveryOptions): DeliveryOutput {
  const { name, sink, indexOf, batchMaxDocs, batchMaxBytes, flushIntervalMs, queueMaxBytes, backoffInitMs, backoffMaxMs } = options;
  const log = options.logger.child({ component: 'output', output: name });
  const spool: Spool | undefined = options.spool ? openSpool(options.spool) : undefined;

  const counters = {
    created: 0,
    duplicates: 0,
    rejected: 0,
    retried: 0,
    dropped: 0,
    failed_requests: 0,
    spooled: 0,
    spool_corrupt_files: 0,
    spool_write_errors: 0,
  };

  // batches not yet acknowledged, in sequence order; pending[0] is the next to send
  const pending: Batch[] = [];
  for (const entry of spool?.entries() ?? []) pending.push({ seq: entry.seq, docs: entry.docs, bytes: entry.bytes, entry, inFlight: false });
  let nextSeq = (pending.length > 0 ? pending[pending.length - 1].seq : 0) + 1;
  if (pending.length > 0) log.info({ batches: pending.length, docs: spool!.docs(), bytes: spool!.bytes(), dir: spool!.dir }, 'spooled batches from an earlier run: sending them first');

  let open: DeliveryRecord[] = [];
  let openBytes = 0;
  let openTimer: NodeJS.Timeout | undefined;
  /** Bytes of records held in memory (open batch included). */
  let memBytes = 0;
  /** Of memBytes, bytes being written to the spool (released when written). */
  let writingBytes = 0;
  let consecutiveFailures = 0;
  let closed = false;
  const waiters: Waiter[] = [];
  const lastLog = { failure: 0, rejection: 0, drop: 0, spoolError: 0 };
  let wakeSender: (() => void) | undefined;
  let wakeBackoff: (() => void) | undefined;

  const memoryDocs = () => open.length + pending.reduce((n, b) => n + (b.records ? b.docs : 0), 0);
  const undeliveredInMemory = () => pending.filter((b) => b.records && !b.entry);

  function stats(): DeliveryStats {
    return {
      published: counters.created + counters.duplicates,
      ...counters,
      queued: memoryDocs(),
      queued_bytes: memBytes,
      spool_docs: spool?.docs() ?? 0,
      spool_bytes: spool?.bytes() ?? 0,
    };
  }

  function wake(): void {
    wakeSender?.();
  }

  /** Resolve the flush() calls whose batches are all acknowledged or on disk. */
  function settleWaiters(): void {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (closed || pending.every((b) => b.seq > w.target || b.entry !== undefined)) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  function seal(): void {
    if (openTimer) clearTimeout(openTimer);
    openTimer = undefined;
    if (open.length === 0) return;
    pending.push({ seq: nextSeq++, records: open, docs: open.length, bytes: openBytes, inFlight: false });
    open = [];
    openBytes = 0;
    relieve();
    wake();
  }

  /** Write a batch to the spool; its records leave memory once written (unless being sent). */
  function spill(b: Batch): Promise<void> {
    if (!spool || !b.records || b.entry || b.writing) return b.writing ?? Promise.resolve();
    const records = b.records;
    writingBytes += b.bytes;
    b.writing = spool.write(b.seq, records).then(
      (entry) => {
        b.entry = entry;
        counters.spooled += entry.docs;
        if (!b.inFlight && b.records === records) {
          b.records = undefined;
          memBytes -= b.bytes;
        }
      },
      (err: Error) => {
        counters.spool_write_errors++;
        const now = Date.now();
        if (now - lastLog.spoolError > REPEAT_LOG_MS) {
          lastLog.spoolError = now;
          log.error({ err: err.message, errors: counters.spool_write_errors }, 'cannot write to the spool; documents stay in memory');
        }
      },
    );
    const done = b.writing.finally(() => {
      writingBytes -= b.bytes;
      b.writing = undefined;
      settleWaiters();
      // a batch written while it was being sent stays in memory: others may have to go
      // (not once closing: close() puts everything on disk itself, then closes the spool)
      if (!closed) relieve();
    });
    return done;
  }

  /** Past the memory bound, move the oldest batches in memory to the spool. */
  function relieve(): void {
    if (!spool) return;
    for (const b of pending) {
      if (memBytes - writingBytes <= queueMaxBytes) return;
      if (!b.records || b.entry || b.writing || b.inFlight) continue;
      if (!spool.canHold(b.bytes)) return;
      void spill(b);
    }
  }

  /** Everything in memory that is not on disk goes there (the backend is failing, or we stop). */
  function spillAll(): Promise<void>[] {
    const writes: Promise<void>[] = [];
    for (const b of pending) {
      if (!b.records || b.entry) continue;
      if (b.writing) writes.push(b.writing);
      else if (spool?.canHold(b.bytes)) writes.push(spill(b));
    }
    return writes;
  }

  function logRejections(rejected: Rejection[]): void {
    counters.rejected += rejected.length;
    const now = Date.now();
    if (counters.rejected === rejected.length) {
      const r = rejected[0];
      lastLog.rejection = now;
      log.error(
        { status: r.status, error: r.error, id: r.record.id, index: r.record.index, document: r.record.source.slice(0, SAMPLE_CHARS), rejected: rejected.length },
        'the backend rejected documents for their content; counted, not retried (a sample)',
      );
    } else if (now - lastLog.rejection > REPEAT_LOG_MS) {
      lastLog.rejection = now;
      const r = rejected[0];
      log.warn({ status: r.status, error: r.error, rejected: counters.rejected }, 'documents rejected by the backend');
    }
  }

  function noteFailure(reason: string, statusCode?: number, requestFailed = true): void {
    consecutiveFailures++;
    if (requestFailed) counters.failed_requests++;
    const now = Date.now();
    if (consecutiveFailures === 1 || now - lastLog.failure > REPEAT_LOG_MS) {
      lastLog.failure = now;
      log.warn({ reason, status: statusCode, attempts: consecutiveFailures, queued: memoryDocs(), spool_docs: spool?.docs() ?? 0 }, 'cannot deliver to the backend; retrying with backoff');
    }
    // someone waits for a flush: keep their documents safe on disk rather than wait for the backend
    if (waiters.length > 0) spillAll();
  }

  /** Send, halving the batch on 413 until it fits (a single document too large is rejected). */
  async function send(records: DeliveryRecord[]): Promise<SendResult> {
    const result = await sink.send(records);
    if (result.status !== 'too_large') return result;
    if (records.length === 1) {
      return { status: 'ok', created: 0, duplicates: 0, retry: [], rejected: [{ record: records[0], status: 413, error: { type: 'request_too_large', reason: result.reason } }] };
    }
    const mid = Math.ceil(records.length / 2);
    const first = await send(records.slice(0, mid));
    if (first.status !== 'ok') return first;
    const second = await send(records.slice(mid));
    if (second.status !== 'ok') return second;
    return {
      status: 'ok',
      created: first.created + second.created,
      duplicates: first.duplicates + second.duplicates,
      rejected: [...first.rejected, ...second.rejected],
      retry: [...first.retry, ...second.retry],
    };
  }

  async function backoff(): Promise<void> {
    const delay = Math.min(backoffMaxMs, backoffInitMs * 2 ** Math.min(30, consecutiveFailures - 1));
    const jittered = delay / 2 + Math.random() * (delay / 2);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, jittered);
      wakeBackoff = () => {
        clearTimeout(t);
        resolve();
      };
    });
    wakeBackoff = undefined;
  }

  /** Bring a batch that is only on disk back into memory; false when nothing is left to send. */
  async function load(b: Batch): Promise<boolean> {
    const read = await spool!.read(b.entry!);
    if (read.status === 'corrupt') {
      counters.spool_corrupt_files++;
      log.error(
        { file: b.entry!.file, reason: read.reason, kept_at: read.keptAt, readable_docs: read.records.length, unreadable_lines: read.unreadableLines },
        'corrupt spool file: moved aside, its readable documents are sent',
      );
      b.entry = undefined;
    }
    b.records = read.records;
    b.docs = read.records.length;
    b.bytes = read.records.reduce((n, r) => n + recordBytes(r), 0);
    memBytes += b.bytes;
    relieve(); // newer batches make room for it
    return b.docs > 0;
  }

  async function acknowledge(b: Batch): Promise<void> {
    pending.splice(pending.indexOf(b), 1);
    if (b.records) memBytes -= b.bytes;
    b.records = undefined;
    if (b.writing) await b.writing;
    if (b.entry && !closed) await spool!.remove(b.entry);
    settleWaiters();
  }

  async function senderLoop(): Promise<void> {
    while (!closed) {
      const b = pending[0];
      if (!b) {
        await new Promise<void>((r) => (wakeSender = r));
        wakeSender = undefined;
        continue;
      }
      if (!b.records) {
        try {
          if (!(await load(b))) {
            await acknowledge(b);
            continue;
          }
        } catch (err) {
          consecutiveFailures++;
          log.error({ err: (err as Error).message }, 'cannot read the spool; retrying');
          await backoff();
          continue;
        }
      }
      b.inFlight = true;
      let result: SendResult;
      try {
        result = await send(b.records!);
      } catch (err) {
        result = { status: 'retryable', reason: (err as Error).message };
      } finally {
        b.inFlight = false;
      }
      if (closed) return; // close() kept the batch on disk; a re-send is recognised by its ids
      if (result.status !== 'ok') {
        counters.retried += b.docs;
        noteFailure(result.reason, result.status === 'retryable' ? result.statusCode : 413);
        // written to the spool while it was being sent: it waits there, not in memory
        // (else, with the backend down, it would hold its memory and full() could stay
        // true with room left in the spool, the capture paused for nothing)
        if (b.entry && b.records) {
          memBytes -= b.bytes;
          b.records = undefined;
        }
        relieve();
        await backoff();
        continue;
      }
      counters.created += result.created;
      counters.duplicates += result.duplicates;
      if (result.rejected.length > 0) logRejections(result.rejected);
      if (result.retry.length > 0) {
        // some documents got 429/5xx: send only those again
        counters.retried += result.retry.length;
        memBytes -= b.bytes;
        b.records = result.retry;
        b.docs = result.retry.length;
        b.bytes = result.retry.reduce((n, r) => n + recordBytes(r), 0);
        memBytes += b.bytes;
        noteFailure(`${result.retry.length} documents answered 429/5xx`, undefined, false);
        await backoff();
        continue;
      }
      if (consecutiveFailures > 0) log.info({ after_attempts: consecutiveFailures }, 'delivering again');
      consecutiveFailures = 0;
      await acknowledge(b);
    }
  }

  const loop = senderLoop().catch((err) => log.fatal({ err }, 'delivery stopped by an internal error'));

  return {
    name,
    publish(docs) {
      for (const doc of docs) {
        // (bytes on their way to the spool are not held for long: they do not count here)
        if (closed || memBytes - writingBytes >= queueMaxBytes * HARD_LIMIT_FACTOR) {
          counters.dropped++;
          const now = Date.now();
          if (now - lastLog.drop > REPEAT_LOG_MS) {
            lastLog.drop = now;
            log.error({ dropped: counters.dropped, queued_bytes: memBytes, spool_bytes: spool?.bytes() ?? 0 }, 'memory queue and spool full: documents dropped');
          }
          continue;
        }
        let record: DeliveryRecord;
        try {
          record = toRecord(doc, indexOf);
        } catch (err) {
          counters.dropped++;
          log.error({ err: (err as Error).message }, 'a document cannot be serialised; dropped');
          continue;
        }
        const size = recordBytes(record);
        open.push(record);
        openBytes += size;
        memBytes += size;
        if (open.length >= batchMaxDocs || openBytes >= batchMaxBytes) seal();
      }
      if (open.length > 0 && !openTimer && !closed) openTimer = setTimeout(seal, flushIntervalMs);
      relieve();
    },

    flush() {
      seal();
      const target = nextSeq - 1;
      return new Promise<void>((resolve) => {
        waiters.push({ target, resolve });
        if (consecutiveFailures > 0) spillAll();
        settleWaiters();
      });
    },

    full: () => memBytes - writingBytes > queueMaxBytes,

    async close() {
      if (closed) return;
      seal();
      closed = true;
      wakeSender?.();
      wakeBackoff?.();
      // what is not acknowledged goes to disk; without room there it is lost, and counted
      await Promise.all(spillAll());
      const lost = undeliveredInMemory();
      const lostDocs = lost.reduce((n, b) => n + b.docs, 0);
      counters.dropped += lostDocs;
      settleWaiters();
      // the sender stops at its next step; a request still in flight is not waited for
      // (its batch is on disk, and a re-send is recognised by its ids)
      void loop;
      spool?.close();
      await sink.close().catch((err) => log.warn({ err: (err as Error).message }, 'closing the client failed'));
      const s = stats();
      const report = { published: s.published, rejected: s.rejected, dropped: s.dropped, spool_docs: s.spool_docs, spool_dir: spool?.dir };
      if (s.spool_docs > 0 || s.dropped > 0 || s.rejected > 0) {
        const why = [
          s.spool_docs > 0 ? `${s.spool_docs} in the spool, sent at the next start` : '',
          s.dropped > 0 ? `${s.dropped} dropped` : '',
          s.rejected > 0 ? `${s.rejected} rejected by the backend` : '',
        ].filter(Boolean);
        log.warn({ ...report, lost_at_stop: lostDocs }, `not all documents were delivered: ${why.join(', ')}`);
      } else {
        log.info(report, 'all documents delivered');
      }
    },

    stats,
  };
}
