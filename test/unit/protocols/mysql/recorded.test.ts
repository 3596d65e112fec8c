/**
 * Real traffic: MariaDB 10.11 with the mysql CLI and with the mysql2 npm client,
 * recorded by test/fixtures/record-mysql.ts through the recording relay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { CAP } from '../../../../src/protocols/mysql/constants';
import { parseGreeting, parseHandshakeResponse } from '../../../../src/protocols/mysql/decode';
import { createMysqlModule } from '../../../../src/protocols/mysql/index';
import type { MysqlData } from '../../../../src/protocols/mysql/types';
import type { ProtocolTransaction } from '../../../../src/protocols/types';
import { chunkBytes, readFixture, type StreamChunk } from '../../../helpers/relay';
import { newRun, summary } from './harness';
import { prng } from './wire';

const DIR = path.resolve(__dirname, '../../../../../test/fixtures/mysql');

function replay(chunks: StreamChunk[], cut?: (n: number) => number[]): Array<ProtocolTransaction<MysqlData>> {
  const run = newRun({ sendResponse: true });
  for (const ch of chunks) {
    const data = chunkBytes(ch);
    let prev = 0;
    for (const p of [...(cut ? cut(data.length) : []), data.length].sort((a, b) => a - b)) {
      if (p <= prev || p > data.length) continue;
      run.session.feed(ch.from, data.subarray(prev, p), ch.t);
      prev = p;
    }
  }
  run.session.close(chunks[chunks.length - 1].t + 1);
  assert.deepEqual(run.errors, []);
  return run.txns;
}

/**
 * Independent of the parser: the client waits for each answer, so a response is
 * every server byte between its command's chunk and the client's next chunk.
 */
function checkSpans(chunks: StreamChunk[], txns: Array<ProtocolTransaction<MysqlData>>): void {
  let clientOffset = 0;
  const clientAt = new Map<number, number>();
  chunks.forEach((ch, i) => {
    if (ch.from !== 'client') return;
    clientAt.set(clientOffset, i);
    clientOffset += chunkBytes(ch).length;
  });
  for (const t of txns) {
    const i = clientAt.get(t.request!.streamOffset);
    assert.ok(i !== undefined, `request at ${t.request!.streamOffset} starts a client chunk`);
    assert.equal(t.request!.startNs, chunks[i].t);
    assert.equal(t.request!.bytes, chunkBytes(chunks[i]).length);
    let bytes = 0;
    let last = -1;
    for (let j = i + 1; j < chunks.length && chunks[j].from === 'server'; j++) {
      bytes += chunkBytes(chunks[j]).length;
      last = j;
    }
    assert.equal(t.response!.bytes, bytes, t.data.request?.query);
    assert.equal(t.response!.startNs, chunks[i + 1].t);
    assert.equal(t.response!.endNs, chunks[last].t);
  }
}

function handshake(chunks: StreamChunk[]) {
  const g = chunkBytes(chunks.find((ch) => ch.from === 'server')!);
  const h = chunkBytes(chunks.find((ch) => ch.from === 'client')!);
  return {
    greeting: parseGreeting(g.subarray(4))!,
    response: parseHandshakeResponse(h.subarray(4), h.readUIntLE(0, 3))!,
  };
}

test('mysql CLI against MariaDB: every statement, with results, errors and bytes', () => {
  const fx = readFixture(path.join(DIR, 'cli.json'));
  assert.equal(fx.connections.length, 1);
  const chunks = fx.connections[0];
  const txns = replay(chunks);
  assert.deepEqual(
    txns.map((t) => {
      const q = t.data.request!;
      const r = t.data.response!;
      return [q.method, q.query, r.kind, r.numRows, r.numFields, r.affectedRows, r.errorCode ?? null, t.data.database];
    }),
    [
      ['CREATE', 'CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL)', 'ok', 0, 0, 0, null, 'shop'],
      ['INSERT', "INSERT INTO items (name, qty) VALUES ('apple', 3), ('pear', 5), ('fig', 0)", 'ok', 0, 0, 3, null, 'shop'],
      ['UPDATE', 'UPDATE items SET qty = qty + 1 WHERE qty > 0', 'ok', 0, 0, 2, null, 'shop'],
      ['SELECT', 'SELECT id, name, qty FROM items ORDER BY id', 'resultset', 3, 3, 0, null, 'shop'],
      ['SELECT', 'SELECT * FROM no_such_table', 'error', 0, 0, 0, 1146, 'shop'],
      ['CALL', 'CALL two_sets()', 'resultset', 2, 1, 0, null, 'shop'],
      // the CLI asks before it sends COM_INIT_DB for "USE mysql"
      ['SELECT', 'SELECT DATABASE()', 'resultset', 1, 1, 0, null, 'shop'],
      ['USE', 'USE mysql', 'ok', 0, 0, 0, null, 'shop'],
      ['SELECT', "SELECT COUNT(*) AS users FROM user WHERE user = 'root'", 'resultset', 1, 1, 0, null, 'mysql'],
    ],
  );
  assert.ok(txns.every((t) => t.data.user === 'root' && t.notes.length === 0));
  assert.equal(txns[1].data.response?.insertId, 1);
  assert.deepEqual(txns[3].data.response?.tables, ['shop.items']);
  assert.deepEqual(txns[3].data.response?.rows, [
    ['1', 'apple', '4'],
    ['2', 'pear', '6'],
    ['3', 'fig', '0'],
  ]);
  assert.equal(txns[4].data.response?.sqlState, '42S02');
  assert.equal(txns[4].data.response?.errorMessage, "Table 'shop.no_such_table' doesn't exist");
  assert.equal(txns[5].data.response?.numResults, 2);
  assert.deepEqual(txns[8].data.response?.tables, []); // COUNT(*) belongs to no table
  checkSpans(chunks, txns);
});

test('mysql2 against MariaDB: prepared statements executed several times, parameters, binary rows', () => {
  const fx = readFixture(path.join(DIR, 'mysql2.json'));
  const chunks = fx.connections[0];
  const txns = replay(chunks);
  const sel = 'SELECT id, name, qty FROM items WHERE qty >= ? AND name <> ? ORDER BY id';
  assert.deepEqual(
    txns.map((t) => {
      const q = t.data.request!;
      const r = t.data.response!;
      return [q.method, q.query, q.params ?? null, r.kind, r.numRows, r.errorCode ?? null];
    }),
    [
      ['PREPARE', sel, null, 'prepare', 0, null],
      ['SELECT', sel, ['1', 'pear'], 'resultset', 1, null],
      ['SELECT', sel, ['0', 'apple'], 'resultset', 2, null],
      ['SELECT', sel, ['10', 'none'], 'resultset', 0, null],
      ['PREPARE', 'INSERT INTO items (name, qty) VALUES (?, ?)', null, 'prepare', 0, null],
      ['INSERT', 'INSERT INTO items (name, qty) VALUES (?, ?)', ['plum', '7'], 'ok', 0, null],
      ['SELECT', 'SELECT name, qty FROM items ORDER BY qty DESC', null, 'resultset', 4, null],
      ['PREPARE', 'SELECT * FROM no_such_table WHERE id = ?', null, 'error', 0, 1146],
      ['SELECT', 'SELECT nope FROM items', null, 'error', 0, 1054],
    ],
  );
  assert.equal(txns[0].data.response?.numParams, 2);
  assert.deepEqual(txns[1].data.response?.rows, [['1', 'apple', '4']]);
  assert.deepEqual(txns[2].data.response?.rows, [
    ['2', 'pear', '6'],
    ['3', 'fig', '0'],
  ]);
  assert.equal(txns[5].data.response?.affectedRows, 1);
  assert.equal(txns[5].data.response?.insertId, 4);
  assert.deepEqual(txns[6].data.response?.rows, [
    ['plum', '7'],
    ['pear', '6'],
    ['apple', '4'],
    ['fig', '0'],
  ]);
  assert.equal(txns[8].data.response?.sqlState, '42S22');
  assert.ok(txns.every((t) => t.data.user === 'root' && t.data.database === 'shop'));
  checkSpans(chunks, txns);
});

test('neither recorded client negotiates CLIENT_DEPRECATE_EOF (the crafted tests cover it); MariaDB offers it', () => {
  for (const name of ['cli.json', 'mysql2.json']) {
    const { greeting, response } = handshake(readFixture(path.join(DIR, name)).connections[0]);
    assert.match(greeting.serverVersion, /MariaDB/);
    assert.ok((greeting.capabilities! & CAP.DEPRECATE_EOF) !== 0, name);
    assert.equal(response.capabilities & CAP.DEPRECATE_EOF, 0, name);
    assert.equal(response.user, 'root');
    assert.equal(response.database, 'shop');
  }
});

test('recorded conversations cut at random places give the same transactions', () => {
  const rnd = prng(2024);
  for (const name of ['cli.json', 'mysql2.json']) {
    const chunks = readFixture(path.join(DIR, name)).connections[0];
    const whole = replay(chunks).map(summary);
    for (let round = 0; round < 30; round++) {
      const cut = replay(chunks, (n) => Array.from({ length: Math.floor(rnd() * 5) }, () => Math.floor(rnd() * n)));
      assert.deepEqual(cut.map(summary), whole, `${name} round ${round}`);
    }
  }
});

test('documents of the recorded exchanges', () => {
  const module = createMysqlModule({ sendRequest: true, sendResponse: true });
  const txns = replay(readFixture(path.join(DIR, 'mysql2.json')).connections[0]);
  const doc = module.documentFields([txns[1]], { ip: '127.0.0.1', port: 13306 });
  assert.equal(doc.status, 'OK');
  assert.equal(doc.root.method, 'SELECT');
  assert.deepEqual(doc.root.params, ['1', 'pear']);
  assert.equal(doc.root.path, 'shop.items');
  assert.equal(doc.root.response, 'id,name,qty\n1,apple,4\n');
  assert.deepEqual(doc.fields.mysql, { affected_rows: 0, insert_id: 0, num_rows: 1, num_fields: 3 });
  assert.deepEqual(doc.fields.db, {
    system: 'mysql',
    statement: 'SELECT id, name, qty FROM items WHERE qty >= ? AND name <> ? ORDER BY id',
    name: 'shop',
    user: 'root',
  });
  const bad = module.documentFields([txns[8]], { ip: '127.0.0.1', port: 13306 });
  assert.equal(bad.status, 'Error');
  assert.equal(bad.outcome, 'failure');
  assert.equal((bad.fields.mysql as Record<string, unknown>).error_code, 1054);
  assert.equal((bad.fields.mysql as Record<string, unknown>).error_message, "42S22: Unknown column 'nope' in 'SELECT'");
});
