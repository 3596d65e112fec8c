/**
 * The field inventory is complete: every leaf of every document the agent
 * writes for every capture the tests use (with every option that adds fields
 * on, and with the defaults) is in src/publish/fields.ts, with a type its
 * values fit; and the inventory names nothing the agent never writes.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { FIELDS, FREE_FORM, lookupField, valueFits } from '../../../src/publish/fields';
import { allDocuments, type SourcedDocument } from '../../helpers/all-documents';

/** Fields no capture exercises, and why they are in the inventory anyway. */
const NOT_IN_CAPTURES: Record<string, string> = {
  'mysql.compressed': 'set for connections using the compressed protocol (src/protocols/mysql/document.ts); no capture has one',
};

interface Leaf {
  path: string;
  value: unknown;
  source: string;
}

/** Every leaf value with its dotted path; array elements share their array's path. */
function leaves(doc: unknown, source: string, path = '', out: Leaf[] = []): Leaf[] {
  if (Array.isArray(doc)) for (const v of doc) leaves(v, source, path, out);
  else if (doc !== null && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) leaves(v, source, path ? `${path}.${k}` : k, out);
  else out.push({ path, value: doc, source });
  return out;
}

describe('field inventory', () => {
  let docs: SourcedDocument[] = [];
  let all: Leaf[] = [];
  before(async () => {
    docs = await allDocuments();
    all = docs.flatMap((d) => leaves(d.doc, d.source));
  });

  test('the captures give documents of every protocol, with processes on both ends', () => {
    assert.ok(docs.length > 400, `${docs.length} documents`);
    const types = new Set(docs.map((d) => d.doc.type));
    assert.deepEqual([...types].sort(), ['http', 'mysql', 'pgsql', 'redis']);
    assert.ok(docs.some((d) => (d.doc.source as { process?: unknown }).process && (d.doc.destination as { process?: unknown }).process));
  });

  test('every leaf of every document is in the inventory', () => {
    const missing = new Map<string, string>();
    for (const l of all) if (lookupField(l.path).kind === 'unknown' && !missing.has(l.path)) missing.set(l.path, l.source);
    assert.deepEqual([...missing].map(([p, s]) => `${p} (first in ${s})`), []);
  });

  test('every value fits its mapped type (free-form members are keywords)', () => {
    const bad: string[] = [];
    for (const l of all) {
      const f = lookupField(l.path);
      const type = f.kind === 'field' ? f.def.type : f.kind === 'free-form' ? (f.def?.type ?? 'keyword') : undefined;
      if (type && !valueFits(type, l.value)) bad.push(`${l.path} = ${JSON.stringify(l.value)} is not ${type} (${l.source})`);
    }
    assert.deepEqual(bad.slice(0, 20), []);
  });

  test('the inventory names only fields some document carries (or says why not)', () => {
    const seen = new Set(all.map((l) => l.path));
    const unused = Object.keys(FIELDS).filter((p) => !seen.has(p) && !NOT_IN_CAPTURES[p]);
    assert.deepEqual(unused, []);
    for (const p of Object.keys(NOT_IN_CAPTURES)) assert.ok(FIELDS[p], `${p} is listed as not in captures but is not in the inventory`);
    for (const [object, ff] of Object.entries(FREE_FORM)) {
      assert.ok([...seen].some((p) => p.startsWith(`${object}.`)), `${object} never seen`);
      for (const k of Object.keys(ff.known)) assert.ok(seen.has(`${object}.${k}`), `${object}.${k} never seen`);
    }
  });

  test('values that do not fit are caught', () => {
    assert.equal(valueFits('long', 1.5), false);
    assert.equal(valueFits('long', '12'), false);
    assert.equal(valueFits('ip', '127.0.0.1'), true);
    assert.equal(valueFits('ip', '::ffff:127.0.0.1'), true);
    assert.equal(valueFits('ip', '2001:db8::1'), true);
    assert.equal(valueFits('ip', 'localhost'), false);
    assert.equal(valueFits('ip', '256.1.1.1'), false);
    assert.equal(valueFits('ip', '1:2:3:4:5:6:7:8:9'), false);
    assert.equal(valueFits('date', '2026-11-25T03:04:35.187Z'), true);
    assert.equal(valueFits('date', 'yesterday'), false);
    assert.equal(valueFits('keyword', 42), false);
    assert.equal(valueFits('boolean', 'true'), false);
    assert.deepEqual(lookupField('http.request.headers.x-custom'), { kind: 'free-form', path: 'http.request.headers.x-custom', object: 'http.request.headers', def: undefined });
    assert.equal(lookupField('http.request.headers.content-length').kind, 'free-form');
    assert.equal(lookupField('http.request.nonsense').kind, 'unknown');
  });
});
