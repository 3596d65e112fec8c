/**
 * documentJson and jsonValue write exactly what JSON.stringify writes: for
 * every document of every capture the tests use, for documents whose protocol
 * fields and process carry hostile text, and for random values.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { ProcessInfo } from '../../../src/conn/process-info';
import type { DocumentFields, ProtocolModule, ProtocolName } from '../../../src/protocols/types';
import { buildDocument, documentJson, type TxnDocument } from '../../../src/publish/document';
import { jsonString, jsonValue, shareJson, sharedJson } from '../../../src/publish/json';
import type { Transaction, TransactionView } from '../../../src/txn/types';
import { allDocuments } from '../../helpers/all-documents';

/** Strings JSON.stringify escapes, or that look like it must. */
const HOSTILE = [
  '',
  'plain',
  'say "hi"',
  'back\\slash',
  'tab\there',
  'nl\nand\rcr',
  '\u0000nul',
  '\u001f\u007f del',
  'latin1 \u00e9\u00ff',
  'emoji \ud83d\ude00',
  'lone high \ud83d',
  'lone low \ude00 end',
  '\u2028 \u2029 separators',
  '</script>',
  '{"json":"inside"}',
];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A random JSON-ish value, with what JSON.stringify leaves out or turns to null. */
function randomValue(r: () => number, depth: number): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 9 : 13));
  switch (pick) {
    case 0:
      return HOSTILE[Math.floor(r() * HOSTILE.length)];
    case 1:
      return Math.floor(r() * 1e6) - 5e5;
    case 2:
      return [NaN, Infinity, -Infinity, -0, 0.1 + 0.2, 1e21, 5e-7, 2 ** 53][Math.floor(r() * 8)];
    case 3:
      return r() < 0.5;
    case 4:
      return null;
    case 5:
      return undefined;
    case 6:
      return () => 1;
    case 7:
      return Symbol('s');
    case 8:
      return String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(r() * 0x10000)));
    case 9:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    case 10: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 5); i > 0; i--) o[r() < 0.2 ? HOSTILE[Math.floor(r() * HOSTILE.length)] : r() < 0.2 ? String(Math.floor(r() * 10)) : `k${Math.floor(r() * 20)}`] = randomValue(r, depth + 1);
      return o;
    }
    case 11:
      return [new Date(Math.floor(r() * 2e12)), Buffer.from('ab'), new Map([[1, 2]]), Object.assign(Object.create(null), { n: 1 }), { toJSON: () => ({ x: 1 }) }, new String('boxed')][Math.floor(r() * 6)];
    default:
      return Object.assign(Object.create({ inherited: 1 }), { own: randomValue(r, depth + 1) });
  }
}

const PROCESS: ProcessInfo = {
  pid: 42,
  name: 'ng"inx',
  ppid: 1,
  executable: '/usr/sbin/nginx',
  args: ['nginx', '-g', 'daemon off;\n\u0001', 'é'],
  userId: 0,
  userName: 'root',
  fromProc: true,
};

/** A transaction whose protocol module reports `fields` (both ends seen, both processes known unless `alone`). */
function transaction(fields: DocumentFields, alone = false): { txn: Transaction; modules: Map<ProtocolName, ProtocolModule> } {
  const module = { name: 'http', documentFields: () => fields } as unknown as ProtocolModule;
  const view = (side: 'client' | 'server'): TransactionView => ({
    protocol: 'http',
    side,
    tuple: { family: 6, clientIp: '::1', clientPort: 40001, serverIp: 'fe80::1', serverPort: 8080 },
    process: alone ? undefined : PROCESS,
    netns: 1,
    txn: { request: undefined, response: undefined, notes: ['a "note"'] } as never,
    requestSeq: 7,
    startNs: 1e9,
    endNs: 1e9 + 12345.6,
  });
  return { txn: alone ? { server: view('server') } : { client: view('client'), server: view('server') }, modules: new Map([['http', module]]) };
}

describe('document JSON', () => {
  let docs: TxnDocument[] = [];
  before(async () => {
    docs = (await allDocuments()).map((d) => d.doc);
  });

  test("every capture's documents: the same text as JSON.stringify", () => {
    assert.ok(docs.length > 400, `${docs.length} documents`);
    const differ = docs.filter((d) => documentJson(d) !== JSON.stringify(d));
    assert.deepEqual(differ.slice(0, 2).map((d) => [documentJson(d), JSON.stringify(d)]), []);
  });

  test('hostile text in every field a protocol or a process gives: the same text as JSON.stringify', () => {
    for (const [i, s] of HOSTILE.entries()) {
      for (const alone of [false, true]) {
        const { txn, modules } = transaction(
          {
            status: 'Error',
            outcome: 'failure',
            matched: i % 2 === 0,
            requestBytes: i,
            responseBytes: -0,
            domain: s,
            action: s,
            root: { method: s, [s]: s, query: [s, i, NaN] },
            // network and related: merged with the protocol's, left as buildDocument's own, or with its related.ip replaced
            fields: {
              http: { request: { headers: { [s]: s } } },
              ...(i % 3 === 0 ? {} : { network: i % 3 === 1 ? { forwarded_ip: s } : { protocol: s, [s]: s } }),
              ...(i % 4 === 0 ? {} : { related: i % 4 === 1 ? { hosts: [s] } : i % 4 === 2 ? { ip: [s], hosts: [s] } : { [s]: [s, i] } }),
              url: { path: s },
            },
          },
          alone,
        );
        const doc = buildDocument(txn, { toWallMs: (ns) => Date.UTC(2026, 11, 7) + ns / 1e6, hostname: `host ${s}`, modules, tags: [s] });
        assert.equal(documentJson(doc), JSON.stringify(doc), `string ${JSON.stringify(s)}${alone ? ', one end' : ''}`);
      }
    }
  });

  test('a copy of a document (as processors make) is written the same way', () => {
    const doc = docs[0];
    assert.equal(documentJson(structuredClone(doc)), documentJson(doc));
  });

  test('an edited copy is not taken for a document as buildDocument made it', () => {
    const copy = structuredClone(docs[0]);
    const event = copy.event as Record<string, unknown>;
    delete event.id;
    event.reason = 'edited';
    copy.client = { ip: '192.0.2.1' };
    assert.equal(documentJson(copy), JSON.stringify(copy));
  });

  test('an enumerable key added to Object.prototype is not written (JSON.stringify writes own keys only)', () => {
    const doc = structuredClone(docs[0]);
    const built = docs[0];
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = 'x';
    try {
      assert.equal(documentJson(built), JSON.stringify(built));
      assert.equal(documentJson(doc), JSON.stringify(doc));
      assert.equal(jsonValue({ a: { b: 1 } }), '{"a":{"b":1}}');
    } finally {
      delete proto.polluted;
    }
  });

  test("a shared object's text is kept from when it was shared (documents never edit one)", () => {
    const shared = shareJson({ pid: 1, name: 'a' });
    shared.name = 'b';
    assert.equal(sharedJson(shared), '{"pid":1,"name":"a"}');
    assert.equal(sharedJson({ pid: 1 }), '{"pid":1}');
  });
});

describe('jsonValue', () => {
  test('random values, hostile strings and keys, numbers JSON has no form for: the same text as JSON.stringify', () => {
    const r = rng(20261207);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(r, 0);
      assert.equal(jsonValue(v), JSON.stringify(v), `value ${i}`);
    }
  });

  test('strings: escaped only when they must be', () => {
    for (const s of HOSTILE) assert.equal(jsonString(s), JSON.stringify(s));
    assert.equal(jsonString('a\ud83d\ude00'), '"a\ud83d\ude00"');
  });

  test('a BigInt throws as in JSON.stringify', () => {
    assert.throws(() => jsonValue({ n: 1n }), TypeError);
  });
});
