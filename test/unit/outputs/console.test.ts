/**
 * The console output writes each batch as one write of NDJSON: exactly
 * JSON.stringify's text of every document, as UTF-8, one per line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createConsoleOutput, syncFileDescriptor } from '../../../src/outputs/console';
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

  describe('a stream on a file (as stdout redirected to one): batches written to its descriptor', () => {
    let dir = '';
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-console-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** What Node's stdout is when it is a file: a synchronous stream that shows its descriptor. */
    function fileStream(file: string, flags = 'w'): Writable & { fd: number; writes: () => number } {
      const fd = fs.openSync(file, flags);
      let writes = 0;
      const stream = new Writable({
        write(chunk: Buffer, _enc, done) {
          writes++;
          fs.writeSync(fd, chunk);
          done();
        },
      });
      return Object.assign(stream, { fd, writes: () => writes });
    }

    test('the same bytes as through the stream, written without it; its descriptor is chosen only for files and non-terminal devices', () => {
      const file = path.join(dir, 'docs.ndjson');
      const stream = fileStream(file);
      assert.equal(syncFileDescriptor(stream), stream.fd);
      const out = createConsoleOutput({ stream });
      const others = [{ message: 'non-ASCII é \ud83d\ude00 and a lone \ud83d' }, { big: 'ü'.repeat(300_000) }];
      for (let i = 0; i < docs.length; i += 37) out.publish(docs.slice(i, i + 37));
      out.publish(others);
      fs.closeSync(stream.fd);
      assert.ok(fs.readFileSync(file).equals(ndjson([...docs, ...others])));
      assert.equal(stream.writes(), 0, 'the stream was bypassed');
      assert.equal(out.stats().published, docs.length + others.length);

      const devnull = fileStream('/dev/null');
      assert.equal(syncFileDescriptor(devnull), devnull.fd);
      fs.closeSync(devnull.fd);
      assert.equal(syncFileDescriptor(devnull), undefined, 'a closed descriptor: the stream decides');
      const [r, w] = pipeFds(dir);
      assert.equal(syncFileDescriptor(Object.assign(new Writable(), { fd: w })), undefined, 'a pipe keeps its stream');
      fs.closeSync(r);
      fs.closeSync(w);
      assert.equal(syncFileDescriptor(sink().stream), undefined, 'no descriptor');
    });

    test('a write that fails (a descriptor not open for writing) stops the output: what follows is counted as dropped, nothing thrown', () => {
      const file = path.join(dir, 'read-only');
      fs.writeFileSync(file, '');
      const stream = fileStream(file, 'r');
      const out = createConsoleOutput({ stream });
      out.publish(docs.slice(0, 3));
      out.publish(docs.slice(3, 5));
      fs.closeSync(stream.fd);
      assert.deepEqual({ published: out.stats().published, dropped: out.stats().dropped }, { published: 0, dropped: 5 });
      assert.equal(fs.readFileSync(file).length, 0);
    });
  });
});

/** A pipe's two descriptors (read, write), through a FIFO in `dir`: Node has no pipe(2). */
function pipeFds(dir: string): [number, number] {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const r = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const w = fs.openSync(fifo, fs.constants.O_WRONLY);
  return [r, w];
}
