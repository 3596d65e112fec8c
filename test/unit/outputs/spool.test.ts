import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeBatch, openSpool, seqFileName, SpoolError } from '../../../src/outputs/delivery/spool';
import type { DeliveryRecord } from '../../../src/outputs/delivery/types';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-spool-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirNo = 0;
const freshDir = () => path.join(root, `spool-${++dirNo}`);

const record = (n: number, extra = ''): DeliveryRecord => ({
  id: `id-${n}`,
  index: 'packetbeat-ebpf-http',
  source: JSON.stringify({ n, url: { path: `/p/${n}${extra}` } }),
});
const records = (from: number, count: number) => Array.from({ length: count }, (_, i) => record(from + i));

describe('spool files', () => {
  test('a batch is written whole, named by its sequence number, and read back identical', async () => {
    const dir = freshDir();
    const spool = openSpool({ dir, maxBytes: 1 << 20 });
    const batch = records(0, 5);
    const entry = await spool.write(7, batch);
    assert.equal(path.basename(entry.file), '00000000000000000007.batch');
    assert.equal(entry.docs, 5);
    assert.equal(entry.bytes, fs.statSync(entry.file).size);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    const read = await spool.read(entry);
    assert.deepEqual(read, { status: 'ok', records: batch });
    // the body is a bulk request body: action line, then the document
    const lines = fs.readFileSync(entry.file, 'utf8').split('\n');
    assert.deepEqual(JSON.parse(lines[1]), { create: { _index: 'packetbeat-ebpf-http', _id: 'id-0' } });
    assert.equal(lines[2], batch[0].source);
    spool.close();
  });

  test('entries come back in sequence order after a restart, with their counts and bytes', async () => {
    const dir = freshDir();
    const first = openSpool({ dir, maxBytes: 1 << 20 });
    // written out of order: a batch that was being sent goes to disk after newer ones
    await first.write(12, records(20, 2));
    await first.write(3, records(0, 4));
    await first.write(10, records(10, 1));
    assert.deepEqual(first.entries().map((e) => e.seq), [3, 10, 12]);
    const bytes = first.bytes();
    first.close();

    const second = openSpool({ dir, maxBytes: 1 << 20 });
    assert.deepEqual(second.entries().map((e) => [e.seq, e.docs]), [[3, 4], [10, 1], [12, 2]]);
    assert.equal(second.docs(), 7);
    assert.equal(second.bytes(), bytes);
    await second.remove(second.entries()[0]);
    assert.deepEqual(second.entries().map((e) => e.seq), [10, 12]);
    assert.equal(second.docs(), 3);
    assert.ok(!fs.existsSync(path.join(dir, seqFileName(3))));
    second.close();
  });

  test('the byte bound: what still fits (with room for a header), writes under way count, a write past it is refused', async () => {
    const dir = freshDir();
    const spool = openSpool({ dir, maxBytes: 4096 });
    const margin = 256;
    assert.equal(spool.canHold(4096 - margin), true);
    assert.equal(spool.canHold(4096 - margin + 1), false);
    const writing = spool.write(1, records(0, 10));
    const size = Buffer.byteLength(encodeBatch(1, records(0, 10)));
    assert.equal(spool.canHold(4096 - margin - size + 1), false, 'a write under way is counted before it lands');
    const e = await writing;
    assert.equal(e.bytes, size);
    assert.equal(spool.canHold(4096 - margin - size), true);
    await assert.rejects(spool.write(2, records(0, 40)), (err: Error) => err instanceof SpoolError && /is full/.test(err.message));
    assert.deepEqual(spool.entries().map((x) => x.seq), [1]);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => !f.startsWith('.')), [seqFileName(1)]);
    spool.close();
  });

  test('one agent per directory: a second one is refused while the first runs, a stale lock is taken over', () => {
    const dir = freshDir();
    const spool = openSpool({ dir, maxBytes: 1 << 20 });
    // the lock names this process: pretend another live process holds it (pid 1 always exists)
    fs.writeFileSync(path.join(dir, '.lock'), '1');
    assert.throws(() => openSpool({ dir, maxBytes: 1 << 20 }), (err: Error) => err instanceof SpoolError && /in use by process 1/.test(err.message));
    // a lock left by a process that is gone
    fs.writeFileSync(path.join(dir, '.lock'), '2147483646');
    const again = openSpool({ dir, maxBytes: 1 << 20 });
    assert.equal(fs.readFileSync(path.join(dir, '.lock'), 'utf8'), String(process.pid));
    again.close();
    spool.close();
  });

  test('an unusable directory is a clear error', () => {
    const file = path.join(root, 'not-a-dir');
    fs.writeFileSync(file, '');
    assert.throws(() => openSpool({ dir: path.join(file, 'spool'), maxBytes: 1 << 20 }), (err: Error) => err instanceof SpoolError && /cannot create spool directory/.test(err.message));
  });
});

describe('corrupt spool files: a clear error, the file kept aside, the readable documents kept', () => {
  async function spoolWith(mutate: (text: string) => string, seq = 5) {
    const dir = freshDir();
    const batch = records(0, 6);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, seqFileName(seq)), mutate(encodeBatch(seq, batch)));
    const spool = openSpool({ dir, maxBytes: 1 << 20 });
    return { dir, spool, batch };
  }

  test('a truncated file: its complete documents are read, the file moves to corrupt/', async () => {
    // cut inside the last document
    const { dir, spool, batch } = await spoolWith((t) => t.slice(0, t.length - 12));
    const [entry] = spool.entries();
    const read = await spool.read(entry);
    assert.equal(read.status, 'corrupt');
    if (read.status !== 'corrupt') return;
    assert.match(read.reason, /checksum/);
    assert.deepEqual(read.records, batch.slice(0, 5));
    assert.equal(read.unreadableLines, 2);
    assert.ok(read.keptAt.startsWith(path.join(dir, 'corrupt') + path.sep));
    assert.ok(fs.existsSync(read.keptAt), 'kept aside, not deleted');
    assert.ok(!fs.existsSync(entry.file));
    assert.deepEqual(spool.entries(), []);
    assert.equal(spool.docs(), 0);
    spool.close();
  });

  test('flipped bytes inside one document: the others are read', async () => {
    const { spool, batch } = await spoolWith((t) => t.replace('{"n":2,', '{"n":2,,'));
    const read = await spool.read(spool.entries()[0]);
    assert.equal(read.status, 'corrupt');
    assert.deepEqual(read.records.map((r) => r.id), batch.filter((_, i) => i !== 2).map((r) => r.id));
    spool.close();
  });

  test('a garbage header: every well-formed pair is still read', async () => {
    const { spool, batch } = await spoolWith((t) => 'not a header' + t.slice(t.indexOf('\n')));
    const entry = spool.entries()[0];
    assert.equal(entry.docs, 0, 'no count without a header');
    const read = await spool.read(entry);
    assert.equal(read.status, 'corrupt');
    if (read.status !== 'corrupt') return;
    assert.match(read.reason, /header/);
    assert.deepEqual(read.records, batch);
    spool.close();
  });

  test('a header naming another batch is caught', async () => {
    const { spool } = await spoolWith((t) => t.replace('"seq":5', '"seq":6'));
    const read = await spool.read(spool.entries()[0]);
    assert.equal(read.status, 'corrupt');
    if (read.status === 'corrupt') assert.match(read.reason, /names batch 6/);
    spool.close();
  });

  test('a .tmp left by a crash mid-write is read as suspect, in its place in the order', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true });
    const text = encodeBatch(2, records(0, 3));
    fs.writeFileSync(path.join(dir, seqFileName(1)), encodeBatch(1, records(100, 1)));
    fs.writeFileSync(path.join(dir, seqFileName(2, '.tmp')), text.slice(0, text.length - 10));
    // a .tmp beside a complete copy of the same batch is just removed
    fs.writeFileSync(path.join(dir, seqFileName(3)), encodeBatch(3, records(200, 1)));
    fs.writeFileSync(path.join(dir, seqFileName(3, '.tmp')), 'half');
    const spool = openSpool({ dir, maxBytes: 1 << 20 });
    assert.deepEqual(spool.entries().map((e) => [e.seq, e.partial ?? false]), [[1, false], [2, true], [3, false]]);
    assert.ok(!fs.existsSync(path.join(dir, seqFileName(3, '.tmp'))));
    const read = await spool.read(spool.entries()[1]);
    assert.equal(read.status, 'corrupt');
    if (read.status !== 'corrupt') return;
    assert.match(read.reason, /unfinished/);
    assert.deepEqual(read.records.map((r) => r.id), ['id-0', 'id-1']);
    spool.close();
  });
});
