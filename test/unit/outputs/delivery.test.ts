import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { createDeliveryOutput, type DeliveryOptions } from '../../../src/outputs/delivery/delivery';
import { encodeBatch, seqFileName } from '../../../src/outputs/delivery/spool';
import type { BulkSink, DeliveryRecord, SendResult } from '../../../src/outputs/delivery/types';
import { captureLog } from '../../helpers/log';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-delivery-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirNo = 0;
const freshDir = () => path.join(root, `spool-${++dirNo}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

type Doc = { event: { id: string }; network: { protocol: string }; n: number; bad?: boolean; big?: boolean };
const doc = (n: number, extra: Partial<Doc> = {}): Doc => ({ event: { id: `txn-${n}` }, network: { protocol: 'http' }, n, ...extra });
const docs = (from: number, count: number) => Array.from({ length: count }, (_, i) => doc(from + i));

/**
 * A backend for the unit tests: keeps documents by id (a second `create` of an id
 * is a 409, as Elasticsearch answers), refuses documents marked `bad` (as a mapping
 * error), and can be down (every request fails as a connection error would).
 */
function createBackend() {
  const stored = new Map<string, number>();
  const order: number[] = [];
  const requests: string[][] = [];
  const state = {
    down: false,
    /** Per-request override, e.g. 429 for some documents. */
    answer: undefined as ((records: DeliveryRecord[]) => SendResult | undefined) | undefined,
  };
  const sink: BulkSink = {
    async send(records) {
      await sleep(1);
      requests.push(records.map((r) => r.id));
      if (state.down) return { status: 'retryable', reason: 'ConnectionError: connect ECONNREFUSED 127.0.0.1:9200' };
      const special = state.answer?.(records);
      if (special) return special;
      const result = { status: 'ok' as const, created: 0, duplicates: 0, rejected: [] as any[], retry: [] as DeliveryRecord[] };
      for (const r of records) {
        const d = JSON.parse(r.source) as Doc;
        if (d.bad) result.rejected.push({ record: r, status: 400, error: { type: 'mapper_parsing_exception', reason: 'failed to parse field [n]' } });
        else if (stored.has(r.id)) result.duplicates++;
        else {
          stored.set(r.id, d.n);
          order.push(d.n);
          result.created++;
        }
      }
      return result;
    },
    async close() {},
  };
  return { sink, stored, order, requests, state };
}

// every output a test makes is closed, even when the test fails (its sender would keep the process alive)
const made: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((o) => o.close()));
});

function output(sink: BulkSink, overrides: Partial<DeliveryOptions> = {}) {
  const log = captureLog();
  const out = createDeliveryOutput({
    name: 'test',
    sink,
    logger: log.logger,
    indexOf: () => 'packetbeat-ebpf-http',
    batchMaxDocs: 10,
    batchMaxBytes: 1 << 20,
    flushIntervalMs: 20,
    queueMaxBytes: 1 << 20,
    backoffInitMs: 5,
    backoffMaxMs: 20,
    ...overrides,
  });
  made.push(out);
  return { out, log };
}

const spoolFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.batch'));

describe('delivery: batching', () => {
  test('by count at once, the remainder after the flush interval', async () => {
    const be = createBackend();
    const { out } = output(be.sink, { batchMaxDocs: 3, flushIntervalMs: 150 });
    const t0 = Date.now();
    out.publish(docs(0, 7));
    await waitUntil('two full batches', () => be.requests.length === 2, 1000);
    assert.deepEqual(be.requests.map((r) => r.length), [3, 3]);
    await waitUntil('the remainder', () => be.requests.length === 3, 2000);
    assert.ok(Date.now() - t0 >= 140, 'the last document waited for the flush interval');
    assert.deepEqual(be.order, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(out.stats().published, 7);
    await out.close();
  });

  test('by bytes', async () => {
    const be = createBackend();
    const { out } = output(be.sink, { batchMaxDocs: 1000, batchMaxBytes: 400 });
    out.publish(docs(0, 12));
    await out.flush();
    assert.ok(be.requests.length >= 3, `${be.requests.length} requests`);
    for (const r of be.requests.slice(0, -1)) assert.ok(r.length < 12);
    assert.deepEqual(be.order, [...Array(12).keys()]);
    await out.close();
  });

  test('ids are the documents\' event.id; flush resolves once delivered', async () => {
    const be = createBackend();
    const { out } = output(be.sink);
    out.publish(docs(0, 3));
    await out.flush();
    assert.deepEqual([...be.stored.keys()], ['txn-0', 'txn-1', 'txn-2']);
    assert.equal(out.stats().queued, 0);
    await out.close();
  });
});

describe('delivery: what the backend answers', () => {
  test('409 on create is a duplicate: delivered, counted apart', async () => {
    const be = createBackend();
    const { out } = output(be.sink);
    out.publish(docs(0, 4));
    await out.flush();
    out.publish(docs(2, 4)); // 2 and 3 again
    await out.flush();
    const s = out.stats();
    assert.equal(s.created, 6);
    assert.equal(s.duplicates, 2);
    assert.equal(s.published, 8);
    assert.equal(s.retried, 0);
    await out.close();
  });

  test('documents rejected for their content: counted, one sample logged, never sent again', async () => {
    const be = createBackend();
    const { out, log } = output(be.sink);
    out.publish([doc(0), doc(1, { bad: true }), doc(2), doc(3, { bad: true })]);
    await out.flush();
    out.publish([doc(4, { bad: true }), doc(5)]);
    await out.flush();
    await sleep(50);
    const s = out.stats();
    assert.equal(s.rejected, 3);
    assert.equal(s.created, 3);
    assert.equal(s.retried, 0);
    assert.equal(be.requests.flat().filter((id) => id === 'txn-1').length, 1, 'sent once');
    const samples = log.lines.filter((l) => /rejected documents for their content/.test(l.msg));
    assert.equal(samples.length, 1);
    assert.equal(samples[0].status, 400);
    assert.equal(samples[0].error.type, 'mapper_parsing_exception');
    assert.equal(samples[0].id, 'txn-1');
    assert.match(samples[0].document, /"bad":true/);
    await out.close();
  });

  test('429/5xx for some documents: only those are sent again, after a backoff', async () => {
    const be = createBackend();
    let first = true;
    be.state.answer = (records) => {
      if (!first) return undefined;
      first = false;
      // as if the node was busy for two of them: deliver the others
      for (const r of records.slice(0, 3)) be.stored.set(r.id, JSON.parse(r.source).n), be.order.push(JSON.parse(r.source).n);
      return { status: 'ok', created: 3, duplicates: 0, rejected: [], retry: records.slice(3) };
    };
    const { out } = output(be.sink);
    out.publish(docs(0, 5));
    await out.flush();
    assert.deepEqual(be.requests, [['txn-0', 'txn-1', 'txn-2', 'txn-3', 'txn-4'], ['txn-3', 'txn-4']]);
    assert.equal(out.stats().retried, 2);
    assert.equal(out.stats().published, 5);
    await out.close();
  });

  test('413: the batch is halved until it fits; a document too large alone is rejected', async () => {
    const be = createBackend();
    be.state.answer = (records) => {
      if (records.length > 3 || records.some((r) => JSON.parse(r.source).big)) return { status: 'too_large', reason: 'ResponseError: 413' };
      return undefined;
    };
    const { out } = output(be.sink);
    out.publish([...docs(0, 6), doc(6, { big: true }), ...docs(7, 3)]);
    await out.flush();
    assert.deepEqual(be.order, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
    assert.equal(out.stats().rejected, 1);
    await out.close();
  });
});

describe('delivery: outages, memory bound and spool', () => {
  test('backend down: batches past the memory bound go to disk; back up: all delivered once, in order, files deleted', async () => {
    const be = createBackend();
    be.state.down = true;
    const dir = freshDir();
    // a bound of about four batches
    const { out, log } = output(be.sink, { queueMaxBytes: 5000, spool: { dir, maxBytes: 1 << 20 } });
    for (let i = 0; i < 20; i++) {
      out.publish(docs(i * 10, 10));
      await sleep(2);
    }
    await waitUntil('batches on disk', () => out.stats().spool_docs >= 150);
    assert.ok(spoolFiles(dir).length >= 15, `${spoolFiles(dir).length} files`);
    // the bound, give or take the batch being retried and those on their way to disk
    assert.ok(out.stats().queued_bytes <= 5000 + 3000, `memory ${out.stats().queued_bytes}`);
    assert.equal(out.full(), false, 'the spool takes the overflow: no backpressure');
    assert.ok(out.stats().failed_requests > 0);
    assert.equal(log.lines.filter((l) => /cannot deliver/.test(l.msg)).length, 1, 'the outage is logged once');
    be.state.down = false;
    await out.flush();
    await waitUntil('every batch', () => out.stats().published === 200 && out.stats().spool_docs === 0);
    assert.deepEqual(be.order, [...Array(200).keys()]);
    assert.equal(be.stored.size, 200);
    assert.deepEqual(spoolFiles(dir), []);
    const s = out.stats();
    assert.ok(s.spooled >= 150);
    assert.equal(s.spool_docs, 0);
    assert.equal(s.dropped, 0);
    assert.ok(log.lines.some((l) => l.msg === 'delivering again'));
    await out.close();
  });

  test('flush while the backend is down puts the documents on disk instead of waiting', async () => {
    const be = createBackend();
    be.state.down = true;
    const dir = freshDir();
    const { out } = output(be.sink, { spool: { dir, maxBytes: 1 << 20 } });
    out.publish(docs(0, 25));
    await waitUntil('a failed attempt', () => out.stats().failed_requests > 0);
    await out.flush();
    assert.equal(out.stats().spool_docs, 25);
    assert.equal(spoolFiles(dir).length, 3);
    be.state.down = false;
    await waitUntil('delivery', () => out.stats().published === 25);
    await out.close();
  });

  test('what is on disk at stop is sent first at the next start', async () => {
    const dir = freshDir();
    const down = createBackend();
    down.state.down = true;
    const first = output(down.sink, { spool: { dir, maxBytes: 1 << 20 } });
    first.out.publish(docs(0, 30));
    await waitUntil('a failed attempt', () => first.out.stats().failed_requests > 0);
    first.out.publish(docs(30, 5)); // still in the open batch at close
    await first.out.close();
    assert.equal(first.out.stats().spool_docs, 35);
    assert.equal(first.out.stats().dropped, 0);
    const report = first.log.lines.find((l) => /not all documents were delivered/.test(l.msg));
    assert.ok(report, 'the stop reports what is left');
    assert.equal(report.spool_docs, 35);
    assert.equal(report.spool_dir, dir);
    assert.ok(!fs.existsSync(path.join(dir, '.lock')));

    const up = createBackend();
    const second = output(up.sink, { spool: { dir, maxBytes: 1 << 20 } });
    assert.equal(second.out.stats().spool_docs, 35);
    second.out.publish(docs(35, 5));
    await second.out.flush();
    await waitUntil('everything', () => up.stored.size === 40);
    assert.deepEqual(up.order, [...Array(40).keys()]);
    assert.deepEqual(spoolFiles(dir), []);
    assert.ok(second.log.lines.some((l) => /spooled batches from an earlier run/.test(l.msg)));
    await second.out.close();
  });

  test('a crash after delivery but before the file was deleted: the re-sent documents are duplicates, not copies', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true });
    const batch = docs(0, 4).map((d) => ({ id: d.event.id, index: 'packetbeat-ebpf-http', source: JSON.stringify(d) }));
    fs.writeFileSync(path.join(dir, seqFileName(1)), encodeBatch(1, batch));
    const be = createBackend();
    for (const d of docs(0, 4)) be.stored.set(d.event.id, d.n); // already delivered
    const { out } = output(be.sink, { spool: { dir, maxBytes: 1 << 20 } });
    await waitUntil('the spool replayed', () => out.stats().spool_docs === 0);
    assert.equal(out.stats().duplicates, 4);
    assert.equal(out.stats().created, 0);
    assert.equal(be.stored.size, 4);
    await out.close();
  });

  test('a corrupt spool file at start: logged with where it was kept, its readable documents delivered, the next files too', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true });
    const rec = (d: Doc) => ({ id: d.event.id, index: 'packetbeat-ebpf-http', source: JSON.stringify(d) });
    const good = encodeBatch(1, docs(0, 3).map(rec));
    const bad = encodeBatch(2, docs(3, 3).map(rec));
    fs.writeFileSync(path.join(dir, seqFileName(1)), good);
    fs.writeFileSync(path.join(dir, seqFileName(2)), bad.slice(0, bad.length - 5)); // last document cut
    fs.writeFileSync(path.join(dir, seqFileName(3)), encodeBatch(3, docs(6, 2).map(rec)));
    const be = createBackend();
    const { out, log } = output(be.sink, { spool: { dir, maxBytes: 1 << 20 } });
    await waitUntil('the spool replayed', () => out.stats().spool_docs === 0 && out.stats().queued === 0);
    assert.deepEqual(be.order, [0, 1, 2, 3, 4, 6, 7]);
    assert.equal(out.stats().spool_corrupt_files, 1);
    const err = log.lines.find((l) => /corrupt spool file/.test(l.msg));
    assert.ok(err);
    assert.equal(err.level, 50);
    assert.match(err.reason, /checksum/);
    assert.equal(err.readable_docs, 2);
    assert.ok(fs.existsSync(err.kept_at), 'kept aside for inspection');
    assert.deepEqual(spoolFiles(dir), []);
    await out.close();
  });

  test('a spool that cannot be written: counted and logged, the documents stay in memory and are delivered later', async () => {
    const dir = freshDir();
    const be = createBackend();
    be.state.down = true;
    const { out, log } = output(be.sink, { queueMaxBytes: 2500, spool: { dir, maxBytes: 1 << 20 } });
    // the directory disappears under the agent
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'not a directory');
    out.publish(docs(0, 30));
    await waitUntil('a failed write', () => out.stats().spool_write_errors > 0);
    assert.ok(log.lines.some((l) => /cannot write to the spool/.test(l.msg)));
    be.state.down = false;
    await out.flush();
    assert.equal(out.stats().published, 30);
    assert.equal(out.stats().dropped, 0);
    fs.rmSync(dir);
    await out.close();
  });

  test('no spool: past the memory bound the capture is paused (full), past twice the bound documents are dropped and counted', async () => {
    const be = createBackend();
    be.state.down = true;
    const { out, log } = output(be.sink, { queueMaxBytes: 2000 });
    let n = 0;
    while (!out.full() && n < 1000) out.publish([doc(n++)]);
    assert.ok(n < 1000, 'full() says so before long');
    assert.equal(out.stats().dropped, 0);
    while (out.stats().dropped === 0 && n < 2000) out.publish([doc(n++)]);
    const kept = n - 1;
    assert.ok(out.stats().queued_bytes >= 4000);
    assert.ok(log.lines.some((l) => /documents dropped/.test(l.msg)));
    await out.close(); // nowhere to keep them: counted as dropped
    assert.equal(out.stats().dropped, 1 + kept);
    assert.equal(out.stats().published, 0);
  });

  test('a batch written to the spool while it was being sent leaves memory when the send fails: full() does not hold with room on disk', async () => {
    const be = createBackend();
    be.state.down = true;
    // each attempt takes a while: the batch is being sent when its spool file is written
    const slow: BulkSink = { send: async (records) => (await sleep(50), be.sink.send(records)), close: () => be.sink.close() };
    const { out } = output(slow, { queueMaxBytes: 1000, spool: { dir: freshDir(), maxBytes: 100_000 } });
    // one batch of ~1.1 kB: past the memory bound at once, spooled while the sender holds it
    out.publish(docs(0, 10));
    await waitUntil('the batch on disk and an attempt failed', () => out.stats().spool_docs === 10 && out.stats().failed_requests >= 1);
    // it waits for the backend on disk, not in memory (it used to keep full() true until the backend came back)
    await waitUntil('room in memory again', () => !out.full(), 2000);
    assert.equal(out.stats().queued, 0);
    be.state.down = false;
    await waitUntil('delivered from the spool', () => be.order.length === 10 && out.stats().spool_docs === 0);
    assert.deepEqual(be.order, Array.from({ length: 10 }, (_, i) => i));
    await out.close();
  });

  test('spool full: overflow stays in memory, then full() pauses the capture', async () => {
    const be = createBackend();
    be.state.down = true;
    const dir = freshDir();
    const { out } = output(be.sink, { queueMaxBytes: 5000, spool: { dir, maxBytes: 12_000 } });
    // publish while there is room; full() may also hold for a moment before the
    // output has found the backend down and started spooling: wait that out
    // (bounded), until it holds with the spool nearly full
    let n = 0;
    for (let i = 0; i < 400; i++) {
      if (!out.full()) out.publish(docs(10 * n++, 10));
      else if (out.stats().spool_bytes > 12_000 - 3000) break;
      await sleep(5);
    }
    assert.equal(out.full(), true);
    // full once the spool has no room for one more batch (about 1.4 kB on disk)
    assert.ok(out.stats().spool_bytes <= 12_000 && out.stats().spool_bytes > 12_000 - 3000, `${out.stats().spool_bytes}`);
    assert.equal(out.stats().dropped, 0);
    be.state.down = false;
    await out.flush();
    assert.equal(out.full(), false);
    assert.equal(out.stats().dropped, 0);
    assert.deepEqual(be.order, [...be.order].sort((a, b) => a - b));
    await out.close();
  });
});
