import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { csvText } from '../../../../src/protocols/mysql/document';
import { createMysqlModule, detectMysql } from '../../../../src/protocols/mysql/index';
import type { MysqlData } from '../../../../src/protocols/mysql/types';
import type { ProtocolTransaction } from '../../../../src/protocols/types';
import { chunkBytes, readFixture } from '../../../helpers/relay';
import { c, runOps, s, timed } from './harness';
import { CLIENT_CAPS_OLD, SERVER_CAPS, T, comQuery, comStmtExecute, err, greeting, handshakeResponse, ok, packet, resultSet } from './wire';

const SERVER = { ip: '127.0.0.1', port: 3306 };

function txns(ops: Parameters<typeof runOps>[0], options = {}): Array<ProtocolTransaction<MysqlData>> {
  const run = runOps(timed(ops), options);
  run.session.close(1e9);
  return run.txns;
}

test('CSV like Go encoding/csv in Packetbeat: quotes where needed, newlines escaped', () => {
  assert.equal(csvText(['a', 'b'], [['1', 'x']]), 'a,b\n1,x\n');
  assert.equal(csvText(['a'], [['has,comma'], ['has "quote"'], [' leading space'], ['line\nbreak'], ['cr\rhere'], ['']]), 'a\n"has,comma"\n"has ""quote"""\n" leading space"\nline\\nbreak\ncr\\rhere\n\n');
  assert.equal(csvText([], []), '');
});

test('document fields of a SELECT: Packetbeat names plus db.*', () => {
  const module = createMysqlModule({ sendRequest: true, sendResponse: true, maxRows: 1 });
  const [t] = txns(
    [
      s(greeting('10.11.6-MariaDB', SERVER_CAPS)),
      c(handshakeResponse(CLIENT_CAPS_OLD, 'app', 'shop')),
      s(ok(2)),
      c(comQuery('  select id, name from items\r\n')),
      s(
        resultSet(
          1,
          [
            { schema: 'shop', table: 'items', name: 'id', type: T.LONG },
            { schema: 'shop', table: 'tags', name: 'name' },
          ],
          [
            ['1', 'apple, red'],
            ['2', 'pear'],
          ],
        ),
      ),
    ],
    { sendResponse: true, maxRows: 1 },
  );
  const d = module.documentFields([t], SERVER);
  assert.equal(d.status, 'OK');
  assert.equal(d.outcome, 'success');
  assert.equal(d.matched, true);
  assert.deepEqual(d.root, {
    method: 'SELECT',
    query: 'select id, name from items',
    request: 'select id, name from items',
    path: 'shop.items, shop.tags',
    response: 'id,name\n1,"apple, red"\n',
  });
  assert.deepEqual(d.fields.mysql, { affected_rows: 0, insert_id: 0, num_rows: 2, num_fields: 2 });
  assert.deepEqual(d.fields.db, { system: 'mysql', statement: 'select id, name from items', name: 'shop', user: 'app' });
  assert.equal(d.requestBytes, t.request?.bytes);
  assert.equal(d.responseBytes, t.response?.bytes);

  const quiet = createMysqlModule().documentFields([t], SERVER);
  assert.equal('request' in quiet.root, false);
  assert.equal('response' in quiet.root, false);
});

test('document fields of an error, an unmatched request, an unknown statement', () => {
  const module = createMysqlModule();
  const [bad] = txns([c(comQuery('SELECT x FROM t')), s(err(1, 1054, '42S22', "Unknown column 'x' in 'field list'"))]);
  const d = module.documentFields([bad], SERVER);
  assert.equal(d.status, 'Error');
  assert.equal(d.outcome, 'failure');
  assert.deepEqual(d.fields.mysql, {
    affected_rows: 0,
    insert_id: 0,
    num_rows: 0,
    num_fields: 0,
    error_code: 1054,
    error_message: "42S22: Unknown column 'x' in 'field list'",
  });

  const [lonely] = txns([c(comQuery('SELECT SLEEP(10)'))]);
  const u = module.documentFields([lonely], SERVER);
  assert.equal(u.status, 'Error');
  assert.equal(u.outcome, 'unknown');
  assert.equal(u.matched, false);
  assert.deepEqual(u.fields.mysql, {});
  assert.equal(u.responseBytes, 0);

  const [exec] = txns([c(comStmtExecute(77, [])), s(ok(1))]);
  const e = module.documentFields([exec], SERVER);
  assert.equal(e.root.method, 'EXECUTE');
  assert.equal(e.root.query, 'Request Execute Statement');
  assert.equal((e.fields.db as Record<string, unknown>).statement, undefined);
  assert.deepEqual(exec.notes, ['The actual query being used is unknown']);
});

test('views: the request from one, the response from the other', () => {
  const module = createMysqlModule();
  const [full] = txns([c(comQuery('DELETE FROM t')), s(ok(1, 9))]);
  const clientView: ProtocolTransaction<MysqlData> = { ...full, response: undefined, data: { ...full.data, response: undefined } };
  const serverView: ProtocolTransaction<MysqlData> = { ...full, request: undefined, data: { ...full.data, request: undefined } };
  const d = module.documentFields([clientView, serverView], SERVER);
  assert.equal(d.matched, true);
  assert.equal(d.status, 'OK');
  assert.equal(d.root.method, 'DELETE');
  assert.equal((d.fields.mysql as Record<string, unknown>).affected_rows, 9);
});

test('params and compressed connections in documents', () => {
  const module = createMysqlModule();
  const t: ProtocolTransaction<MysqlData> = {
    request: { startNs: 1, endNs: 1, bytes: 10, streamOffset: 0 },
    response: { startNs: 2, endNs: 2, bytes: 11, streamOffset: 0 },
    notes: ['MySQL compressed protocol: the messages are not decoded'],
    data: {
      compressed: true,
      user: 'app',
      request: { startNs: 1, endNs: 1, bytes: 10, streamOffset: 0, notes: [], command: -1, commandName: 'COMPRESSED', method: '', query: '', isSql: false },
    },
  };
  const d = module.documentFields([t], SERVER);
  assert.deepEqual(d.root, {});
  assert.deepEqual(d.fields.mysql, { compressed: true });
  assert.equal((d.fields.db as Record<string, unknown>).user, 'app');
});

test('detect: a HandshakeV10 greeting from the server', () => {
  const g = greeting('8.0.36');
  assert.equal(detectMysql(Buffer.alloc(0), g), 'yes');
  assert.equal(detectMysql(Buffer.alloc(0), greeting('5.5.5-10.11.6-MariaDB-0+deb12u1')), 'yes');
  // header, protocol, '8.0.36' NUL, connection id, 8 bytes of scramble: the filler byte decides
  for (let n = 1; n < 25; n++) assert.equal(detectMysql(Buffer.alloc(0), g.subarray(0, n)), 'need-more', `first ${n} bytes`);
  assert.equal(detectMysql(Buffer.alloc(0), Buffer.alloc(0)), 'need-more');
  // the client speaks first: not MySQL
  assert.equal(detectMysql(Buffer.from('GET / HTTP/1.1\r\n'), Buffer.alloc(0)), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), Buffer.from('HTTP/1.1 200 OK\r\n')), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), Buffer.from('+OK\r\n')), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n')), 'no');
  // wrong sequence id, protocol version, version string
  const bad = (i: number, v: number) => {
    const b = Buffer.from(g);
    b[i] = v;
    return b;
  };
  assert.equal(detectMysql(Buffer.alloc(0), bad(3, 1)), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), bad(4, 9)), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), bad(5, 0x41)), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), bad(7, 0x07)), 'no');
  // an ERR instead of a greeting is not taken for one
  assert.equal(detectMysql(Buffer.alloc(0), err(0, 1130, 'HY000', "Host '10.0.0.9' is not allowed to connect")), 'no');
  assert.equal(detectMysql(Buffer.alloc(0), packet(0, Buffer.from([10]))), 'no');
  // the recorded MariaDB greeting
  const fx = readFixture(path.resolve(__dirname, '../../../../../test/fixtures/mysql/cli.json'));
  const first = fx.connections[0].find((ch) => ch.from === 'server')!;
  assert.equal(detectMysql(Buffer.alloc(0), chunkBytes(first)), 'yes');
});
