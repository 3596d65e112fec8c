/**
 * Real traffic: PostgreSQL 15 with psql and node-postgres, recorded by
 * test/fixtures/record-pgsql.ts. Each connection's chunks are fed as the
 * capture would deliver them (a chunk's `gap` = bytes not copied).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { createPgsqlModule } from '../../../../src/protocols/pgsql';
import type { PgsqlData } from '../../../../src/protocols/pgsql/types';
import type { ProtocolTransaction } from '../../../../src/protocols/types';
import { chunkBytes, readFixture, type StreamChunk } from '../../../helpers/relay';
import { feed, gap, newRun, apply, prng, splitOps, summary, type Op } from './helpers';

const DIR = path.resolve(__dirname, '../../../../../test/fixtures/pgsql');
const SERVER = { ip: '127.0.0.1', port: 5432 };

interface Chunk extends StreamChunk {
  gap?: number;
}

function load(name: string): Op[][] {
  const fixture = readFixture(path.join(DIR, `${name}.json`));
  return fixture.connections.map((conn) =>
    (conn as Chunk[]).flatMap((c) => {
      const ops: Op[] = [feed(c.from, chunkBytes(c), c.t)];
      if (c.gap) ops.push(gap(c.from, c.gap, c.t, false));
      return ops;
    }),
  );
}

function transactions(name: string, options = { sendResponse: true }): Array<ProtocolTransaction<PgsqlData>> {
  const conns = load(name);
  assert.equal(conns.length, 1, `${name}: one connection`);
  const run = apply(newRun(options), conns[0]!);
  run.session.close(Number.MAX_SAFE_INTEGER);
  assert.deepEqual(run.errors, [], `${name}: no parse errors`);
  return run.txns;
}

const pgsqlModule = createPgsqlModule({ sendResponse: true });
const doc = (t: ProtocolTransaction<PgsqlData>) => pgsqlModule.documentFields([t], SERVER);

/** Bytes the server sent after the client's first message of type `type` (gaps included). */
function serverBytesAfter(ops: Op[], type: string): number {
  const at = ops.findIndex((o) => o.op === 'feed' && o.from === 'client' && o.data[0] === type.charCodeAt(0));
  let n = 0;
  for (const o of ops.slice(at)) {
    if (o.from !== 'server') continue;
    if (o.op === 'feed') n += o.data.length;
    else if (o.op === 'gap') n += o.length;
  }
  return n;
}

test('psql -c with five statements: five transactions in order (SSLRequest answered N first)', () => {
  const ops = load('psql-multi')[0]!;
  assert.equal((ops[0] as { data: Buffer }).data.readInt32BE(4), 80877103, 'psql tried SSL');
  const txns = transactions('psql-multi');
  assert.deepEqual(
    txns.map((t) => [doc(t).root.method, t.data.response?.tag, t.data.response?.numRows, doc(t).status]),
    [
      ['CREATE', 'CREATE TABLE', 0, 'OK'],
      ['INSERT', 'INSERT 0 2', 0, 'OK'],
      ['INSERT', 'INSERT 0 1', 0, 'OK'],
      ['UPDATE', 'UPDATE 2', 0, 'OK'],
      ['SELECT', 'SELECT 3', 3, 'OK'],
    ],
  );
  assert.equal(txns[2]!.data.request?.query, "insert into items values (3, 'plum, red', 0.75)");
  const select = doc(txns[4]!);
  assert.equal(select.root.response, 'id,name,price\n1,apple,1.50\n2,pear,4.50\n3,"plum, red",1.50\n');
  assert.deepEqual(select.fields.db, { system: 'postgresql', statement: 'select * from items order by id', name: 'postgres', user: 'postgres' });
  // the statements share the Query message; the answers add up to what the server sent, ReadyForQuery aside
  const q = ops.find((o) => o.op === 'feed' && o.from === 'client' && o.data[0] === 0x51) as { data: Buffer };
  assert.equal(txns.reduce((s, t) => s + t.request!.bytes, 0), q.data.length);
  assert.equal(txns.reduce((s, t) => s + t.response!.bytes, 0), serverBytesAfter(ops, 'Q') - 6);
});

test('psql -f script: INSERT, UPDATE, SELECT, an error, COPY in and out, DELETE', () => {
  const txns = transactions('psql-script');
  assert.deepEqual(
    txns.map((t) => [t.data.request?.query, t.data.response?.tag ?? t.data.response?.error?.code, t.data.response?.numRows]),
    [
      ["insert into items values (4, 'fig', 3.10)", 'INSERT 0 1', 0],
      ['update items set price = price + 1', 'UPDATE 4', 0],
      ['select id, name from items where price > 2 order by id', 'SELECT 4', 4],
      ['select * from missing_table', '42P01', 0],
      ['copy items (id, name, price) from stdin', 'COPY 3', 0],
      ['copy items to stdout', 'COPY 7', 7],
      ['delete from items where id >= 10', 'DELETE 3', 0],
    ],
  );
  const err = doc(txns[3]!);
  assert.equal(err.status, 'Error');
  assert.deepEqual(err.fields.pgsql, {
    num_rows: 0,
    num_fields: 0,
    error_code: '42P01',
    error_message: 'relation "missing_table" does not exist',
    error_severity: 'ERROR',
  });
  // COPY FROM STDIN: the copy data (sent after CopyInResponse) belongs to the request
  const copyIn = txns[4]!;
  assert.equal(copyIn.data.response?.copy, 'in');
  assert.ok(copyIn.request!.endNs > copyIn.request!.startNs);
  assert.ok(copyIn.request!.bytes > Buffer.byteLength('copy items (id, name, price) from stdin;') + 6);
  assert.equal(copyIn.data.response?.rowsAffected, 3);
  assert.ok(txns.every((t) => t.notes.length === 0));
});

test('psql -c with a failing statement in the middle: the last one never ran', () => {
  const txns = transactions('psql-error-multi');
  assert.deepEqual(
    txns.map((t) => [t.data.request?.query, doc(t).status, t.data.response?.error?.code, t.data.response?.error?.message]),
    [
      ['select 1 as one', 'OK', undefined, undefined],
      ['select 1/0', 'Error', '22012', 'division by zero'],
    ],
  );
});

test('psql with a 2000-row result seen as payload heads: one transaction, rows as far as seen', () => {
  const ops = load('psql-big')[0]!;
  assert.ok(ops.some((o) => o.op === 'gap'), 'the fixture has payload-head gaps');
  const txns = transactions('psql-big');
  assert.equal(txns.length, 1);
  const t = txns[0]!;
  assert.equal(doc(t).root.method, 'SELECT');
  assert.equal(doc(t).status, 'OK');
  assert.equal(t.data.response?.numFields, 2);
  assert.ok(t.data.response!.numRows > 100 && t.data.response!.numRows < 2000, `rows seen ${t.data.response!.numRows}`);
  assert.deepEqual(t.data.response?.rows?.slice(0, 2), [
    ['1', 'xxxxxxxxxx1'],
    ['2', 'xxxxxxxxxx2'],
  ]);
  assert.equal(t.response!.bytes, serverBytesAfter(ops, 'Q'));
  assert.deepEqual(t.notes, [], 'payload heads by design are no packet loss');
});

test('psql over SSL: SSLRequest answered S, then only TLS: nothing reported', () => {
  const ops = load('psql-ssl')[0]!;
  const reply = ops.find((o) => o.op === 'feed' && o.from === 'server') as { data: Buffer };
  assert.equal(reply.data.toString('latin1', 0, 1), 'S');
  assert.deepEqual(transactions('psql-ssl'), []);
});

test('node-postgres: a named prepared statement three times, parameterized queries, an error, a row-limited portal', () => {
  const txns = transactions('pg-prepared');
  const byId = 'select id, name, price from items where id = $1';
  assert.deepEqual(
    txns.map((t) => [t.data.request?.protocol, t.data.request?.query, t.data.response?.numRows, t.data.response?.tag ?? t.data.response?.error?.code]),
    [
      ['extended', byId, 1, 'SELECT 1'],
      ['extended', byId, 1, 'SELECT 1'],
      ['extended', byId, 1, 'SELECT 1'],
      ['extended', 'insert into items(id, name, price) values ($1, $2, $3)', 0, 'INSERT 0 1'],
      ['extended', 'select count(*) as n from items where price > $1', 1, 'SELECT 1'],
      ['extended', 'select * from no_such_table where id = $1', 0, '42P01'],
      ['simple', 'select now()', 1, 'SELECT 1'],
      ['extended', 'select g from generate_series(1, 5) g', 2, undefined],
      ['extended', 'select g from generate_series(1, 5) g', 2, undefined],
      ['extended', 'select g from generate_series(1, 5) g', 1, 'SELECT 1'],
    ],
  );
  // only the first execution of the named statement carries its Parse
  assert.ok(txns.slice(0, 3).every((t) => t.data.request?.statement === 'item-by-id'));
  assert.ok(txns[1]!.request!.bytes < txns[0]!.request!.bytes);
  assert.equal(txns[1]!.request!.bytes, txns[2]!.request!.bytes);
  assert.deepEqual(
    txns.slice(0, 3).map((t) => t.data.response?.rows?.[0]?.slice(0, 2)),
    [
      ['1', 'apple'],
      ['2', 'pear'],
      ['3', 'plum, red'],
    ],
  );
  assert.deepEqual(
    txns.slice(7).map((t) => t.data.response?.suspended ?? false),
    [true, true, false],
  );
  assert.equal(doc(txns[5]!).status, 'Error');
  assert.equal(txns[0]!.data.request?.application, 'pg-recorder');
});

test('node-postgres pipeline mode: four queries sent before any answer pair correctly', () => {
  const txns = transactions('pg-pipeline');
  assert.deepEqual(
    txns.map((t) => [t.data.request?.query, t.data.response?.tag ?? t.data.response?.error?.code, t.data.response?.rows]),
    [
      ['select name from items where id = $1', 'SELECT 1', [['apple']]],
      ['update items set price = $1 where id = $2', 'UPDATE 1', undefined],
      ['insert into items(id, name) values ($1, $2)', '23505', undefined],
      ['select count(*) from items where name like $1', 'SELECT 1', [['2']]],
    ],
  );
  // all four requests were in flight at once
  const firstAnswer = Math.min(...txns.map((t) => t.response!.startNs));
  assert.ok(txns.every((t) => t.request!.endNs <= firstAnswer));
  for (let i = 1; i < txns.length; i++) assert.equal(txns[i]!.request!.streamOffset, txns[i - 1]!.request!.streamOffset + txns[i - 1]!.request!.bytes);
});

test('raw pipelining client: two Executes before one Sync; a failed Parse makes the server skip the next group', () => {
  const txns = transactions('raw-pipeline');
  assert.deepEqual(
    txns.map((t) => [t.data.request?.query, t.data.request?.statement, t.data.response?.tag ?? t.data.response?.error?.code]),
    [
      ['select name from items where id = $1', '', 'SELECT 1'],
      ['select count(*) from items', 's2', 'SELECT 1'],
      ['selec oops', '', '42601'],
    ],
  );
  assert.equal(txns[0]!.data.request?.application, 'raw-pipeline');
});

test('recorded conversations give the same transactions however the chunks are split', () => {
  const rnd = prng(11);
  for (const name of ['psql-multi', 'psql-script', 'pg-prepared', 'pg-pipeline', 'raw-pipeline', 'psql-big']) {
    const ops = load(name)[0]!;
    const expected = apply(newRun({ sendResponse: true }), ops).txns.map(summary);
    for (let r = 0; r < 20; r++) {
      const split = splitOps(ops, (d) => Array.from({ length: Math.floor(rnd() * 4) }, () => Math.floor(rnd() * d.length)).sort((a, b) => a - b));
      assert.deepEqual(apply(newRun({ sendResponse: true }), split).txns.map(summary), expected, `${name} split ${r}`);
    }
  }
});
