/**
 * The console output writes each batch as one write of NDJSON: exactly
 * JSON.stringify's text of every document, as UTF-8, one per line.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import { createConsoleOutput } from '../../../src/outputs/console';
import type { TxnDocument } from '../../../src/publish/document';
import { allDocuments } from '../../helpers/all-documents';

/** A stream that keeps what it is given. */
function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

const ndjson = (docs: unknown[]): Buffer => Buffer.from(docs.map((d) => JSON.stringify(d) + '\n').join(''), 'utf8');

describe('console output', () => {
  let docs: TxnDocument[] = [];
  before(async () => {
    docs = (await allDocuments()).map((d) => d.doc);
  });

  test("every capture's documents, in batches: the bytes of JSON.stringify's text, one per line", () => {
    const { stream, bytes } = sink();
    const out = createConsoleOutput({ stream });
    for (let i = 0; i < docs.length; i += 37) out.publish(docs.slice(i, i + 37));
    assert.ok(bytes().equals(ndjson(docs)));
    assert.equal(out.stats().published, docs.length);
  });

  test('documents from elsewhere (copies, hostile and non-ASCII text, a huge field) are written the same way', () => {
    const { stream, bytes } = sink();
    const out = createConsoleOutput({ stream });
    const huge = 'é\u0001"'.repeat(2_000_000); // 6 MB of text to escape and encode
    const others = [
      structuredClone(docs[0]),
      { message: 'emoji \ud83d\ude00, lone \ud83d, nul \u0000, quote ", backslash \\', n: [NaN, -0, 1e21, 2 ** 53] },
      { big: huge },
      { after: 'the huge one' },
    ];
    out.publish(others);
    out.publish(docs.slice(0, 3));
    assert.ok(bytes().equals(ndjson([...others, ...docs.slice(0, 3)])));
  });

  test('a batch that throws (a BigInt a processor left) leaves nothing in the next batch', () => {
    const { stream, bytes } = sink();
    const out = createConsoleOutput({ stream });
    assert.throws(() => out.publish([docs[0], { n: 1n }]), TypeError);
    out.publish([docs[1]]);
    assert.ok(bytes().equals(ndjson([docs[1]])));
  });

  test('pretty: JSON.stringify with two spaces, a line each', () => {
    const { stream, bytes } = sink();
    const out = createConsoleOutput({ stream, pretty: true });
    out.publish(docs.slice(0, 2));
    assert.equal(bytes().toString('utf8'), docs.slice(0, 2).map((d) => JSON.stringify(d, null, 2) + '\n').join(''));
  });
});
