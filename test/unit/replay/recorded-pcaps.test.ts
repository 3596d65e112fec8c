/**
 * Our own captures of real servers and clients (tcpdump on loopback, recorded by
 * test/fixtures/record-pcaps.ts): each replays to the transactions written beside it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { replayCapture } from '../../../src/agent/replay';
import { validateConfig } from '../../../src/config';
import type { Output } from '../../../src/outputs/types';
import { getField } from '../../../src/publish/processors';
import type { TxnDocument } from '../../../src/publish/document';
import { createLogger } from '../../../src/util/logger';
import type { ExpectedTransaction } from '../../fixtures/record-pcaps';

const DIR = path.resolve(__dirname, '../../../../test/fixtures/pcap');

for (const name of ['http', 'pgsql', 'mysql', 'redis']) {
  test(`${name}.pcap replays to its expected transactions`, async () => {
    const expected = JSON.parse(fs.readFileSync(path.join(DIR, `${name}.expected.json`), 'utf8')) as { port: number; transactions: ExpectedTransaction[] };
    const docs: TxnDocument[] = [];
    const output: Output = { name: 't', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: 0, dropped: 0, queued: 0 }) };
    const config = validateConfig({ protocols: { [name]: { ports: [expected.port] } }, infer_protocols: false }, name);
    const result = await replayCapture(path.join(DIR, `${name}.pcap`), config, [output], createLogger('silent'));
    assert.equal(result.pipeline.parseErrors, 0);
    const got = docs as Array<Record<string, unknown>>;
    assert.equal(got.length, expected.transactions.length, JSON.stringify(got.map((d) => d.query)));
    expected.transactions.forEach((want, i) => {
      const d = got[i];
      assert.equal(d.type, want.type);
      assert.equal(d.method, want.method, `#${i}`);
      if (want.query) assert.equal(d.query, want.query, `#${i}`);
      assert.equal(d.status, want.status, `#${i} ${want.query}`);
      for (const [k, v] of Object.entries(want.fields)) assert.deepEqual(getField(d, k), v, `#${i} ${want.query}: ${k}`);
      assert.equal(getField(d, 'destination.port'), expected.port);
      assert.equal(getField(d, 'source.ip'), '127.0.0.1');
    });
  });
}
