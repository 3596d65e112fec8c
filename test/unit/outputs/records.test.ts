import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { replayCapture } from '../../../src/agent/replay';
import { validateConfig } from '../../../src/config';
import type { Output } from '../../../src/outputs/types';
import type { TxnDocument } from '../../../src/publish/document';
import { createLogger } from '../../../src/util/logger';
import { compileIndexName, DEFAULT_INDEX, documentId, toRecord } from '../../../src/outputs/delivery/records';
import { transactionId, type TransactionIdentity } from '../../../src/publish/event-id';

describe('index names', () => {
  test('the default: one data stream per protocol', () => {
    const indexOf = compileIndexName(DEFAULT_INDEX);
    assert.equal(indexOf({ network: { protocol: 'pgsql' } }), 'packetbeat-ebpf-pgsql');
    assert.equal(indexOf({}), 'packetbeat-ebpf-unknown');
  });

  test('placeholders with and without brackets; values made valid index names', () => {
    const indexOf = compileIndexName('pbe-%{host.name}-%{[type]}');
    assert.equal(indexOf({ host: { name: 'Web 01:x' }, type: 'http' }), 'pbe-web_01_x-http');
    assert.equal(compileIndexName('fixed-name')({ type: 'http' }), 'fixed-name');
  });
});

describe('document ids', () => {
  test("the document's event.id, else a hash of its content", () => {
    assert.equal(documentId({ event: { id: 'abc' } }, '{}'), 'abc');
    const a = documentId({ n: 1 }, '{"n":1}');
    assert.equal(a, documentId({ n: 1 }, '{"n":1}'));
    assert.notEqual(a, documentId({ n: 2 }, '{"n":2}'));
    assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  });

  test('a record carries the id, the index and the JSON text', () => {
    const doc = { event: { id: 'x1' }, network: { protocol: 'redis' } };
    assert.deepEqual(toRecord(doc, compileIndexName(DEFAULT_INDEX)), { id: 'x1', index: 'packetbeat-ebpf-redis', source: JSON.stringify(doc) });
  });
});

describe('transaction ids (event.id)', () => {
  const base: TransactionIdentity = {
    communityId: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    protocol: 'http',
    views: ['client', 'server'],
    requestSeq: 123456,
    startNs: 987654321,
    timestamp: '2026-01-01T00:00:00.000Z',
  };

  test('the same transaction, the same id; 22 base64url characters', () => {
    assert.equal(transactionId(base), transactionId({ ...base, views: [...base.views] }));
    assert.match(transactionId(base), /^[A-Za-z0-9_-]{22}$/);
  });

  test('the first 128 bits of the SHA-256 of the identity, base64url (stable across versions)', () => {
    for (let i = 0; i < 200; i++) {
      const t = { ...base, requestSeq: i * 7919, startNs: 987654321 + i };
      const key = [t.communityId, t.protocol, t.views.join('+'), t.requestSeq, t.startNs, t.timestamp].join('|');
      assert.equal(transactionId(t), createHash('sha256').update(key).digest().subarray(0, 16).toString('base64url'));
    }
  });

  test('another flow, request position, start, view or protocol: another id', () => {
    const ids = new Set([
      transactionId(base),
      transactionId({ ...base, communityId: '1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=' }),
      transactionId({ ...base, requestSeq: 123457 }),
      transactionId({ ...base, requestSeq: undefined }),
      transactionId({ ...base, startNs: 987654322 }),
      transactionId({ ...base, timestamp: '2026-01-01T00:00:00.001Z' }),
      transactionId({ ...base, views: ['server'] }),
      transactionId({ ...base, protocol: 'redis' }),
    ]);
    assert.equal(ids.size, 8);
  });
});

describe('event.id on real captures', () => {
  const DIR = path.resolve(__dirname, '../../../../test/fixtures/pcap');
  async function replayIds(name: string, port: number): Promise<string[]> {
    const docs: TxnDocument[] = [];
    const output: Output = { name: 't', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: 0, dropped: 0, queued: 0 }) };
    const config = validateConfig({ protocols: { [name]: { ports: [port] } }, infer_protocols: false }, name);
    await replayCapture(path.join(DIR, `${name}.pcap`), config, [output], createLogger('silent'));
    return docs.map((d) => (d.event as { id: string }).id);
  }

  for (const name of ['http', 'pgsql', 'mysql', 'redis']) {
    test(`${name}.pcap: every transaction its own id, the same ids on a second replay`, async () => {
      const { port } = JSON.parse(fs.readFileSync(path.join(DIR, `${name}.expected.json`), 'utf8')) as { port: number };
      const first = await replayIds(name, port);
      assert.ok(first.length > 1);
      assert.equal(new Set(first).size, first.length, 'distinct transactions, distinct ids');
      assert.deepEqual(await replayIds(name, port), first);
    });
  }
});
