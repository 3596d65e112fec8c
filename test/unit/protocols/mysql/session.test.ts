import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NOTE_COMPRESSED, NOTE_REQUEST_LOSS, NOTE_UNKNOWN_STATEMENT, NOTE_UNMATCHED_REQUEST } from '../../../../src/protocols/mysql/session';
import { c, runOps, s, timed, newRun, apply } from './harness';
import {
  AUTH_RESPONSE,
  CAPS,
  CLIENT_CAPS_8,
  CLIENT_CAPS_OLD,
  COM_PING,
  COM_QUIT,
  COM_STATISTICS,
  SCRAMBLE,
  STATUS_AUTOCOMMIT,
  STATUS_MORE_RESULTS,
  SERVER_CAPS,
  T,
  binaryRow,
  columnCount,
  columnDef,
  comInitDb,
  comQuery,
  comSimple,
  comStmtClose,
  comStmtExecute,
  comStmtPrepare,
  comStmtReset,
  eof,
  err,
  greeting,
  handshakeResponse,
  ok,
  okEof,
  okSchemaChange,
  packet,
  prepareOk,
  resultSet,
  sslRequest,
  textRow,
} from './wire';

const ITEMS = [
  { schema: 'shop', table: 'items', name: 'id', type: T.LONG },
  { schema: 'shop', table: 'items', name: 'name' },
];

/** Connection phase of a MySQL 8 client with caching_sha2_password: auth switch, fast-auth, OK. */
function connect(caps = CLIENT_CAPS_8, user = 'app', db: string | null = 'shop') {
  return [
    s(greeting('8.0.36', SERVER_CAPS)),
    c(handshakeResponse(caps, user, db ?? undefined)),
    // AuthSwitchRequest to mysql_native_password, the client's answer, AuthMoreData, OK
    s(packet(2, Buffer.concat([Buffer.from([0xfe]), Buffer.from('mysql_native_password\0'), SCRAMBLE, Buffer.from([0])]))),
    c(packet(3, AUTH_RESPONSE)),
    s(packet(4, Buffer.from([0x01, 0x03]))),
    s(ok(5)),
  ];
}

test('connection phase is no transaction; user and database are known afterwards', () => {
  const run = runOps(
    timed([
      ...connect(),
      c(comQuery('SELECT id, name FROM items')),
      s(resultSet(1, ITEMS, [['1', 'apple'], ['2', 'pear']], { deprecateEof: true })),
    ]),
  );
  assert.deepEqual(run.errors, []);
  assert.equal(run.txns.length, 1);
  const t = run.txns[0];
  assert.equal(t.data.request?.method, 'SELECT');
  assert.equal(t.data.request?.query, 'SELECT id, name FROM items');
  assert.equal(t.data.user, 'app');
  assert.equal(t.data.database, 'shop');
  assert.equal(t.data.serverVersion, '8.0.36');
  assert.equal(t.data.response?.numRows, 2);
  assert.equal(t.data.response?.numFields, 2);
  assert.deepEqual(t.data.response?.tables, ['shop.items']);
  // the password hash goes nowhere
  const json = JSON.stringify(run.txns);
  assert.ok(!json.includes(AUTH_RESPONSE.toString('hex')));
  assert.ok(!json.includes(AUTH_RESPONSE.toString('latin1')));
  assert.ok(!json.includes(AUTH_RESPONSE.toString('base64')));
  assert.equal(run.session.pending(), 0);
  assert.equal(run.session.bufferedBytes(), 0);
});

test('spans: timestamps of the first and last byte, bytes with headers, exact stream offsets', () => {
  const hs = connect();
  const hsClientBytes = hs.filter((o) => o.op === 'feed' && o.from === 'client').reduce((n, o) => n + (o as { data: Buffer }).data.length, 0);
  const q1 = comQuery('UPDATE items SET qty = 0');
  const rs = resultSet(1, ITEMS, [['1', 'apple']], { deprecateEof: false });
  const run = runOps([
    ...hs,
    { op: 'feed', from: 'client', data: q1, ts: 100 },
    { op: 'feed', from: 'server', data: ok(1, 3, 0), ts: 200 },
    { op: 'feed', from: 'client', data: comQuery('SELECT id, name FROM items'), ts: 300 },
    { op: 'feed', from: 'server', data: rs.subarray(0, 20), ts: 400 },
    { op: 'feed', from: 'server', data: rs.subarray(20), ts: 500 },
  ]);
  assert.equal(run.txns.length, 2);
  const [a, b] = run.txns;
  assert.deepEqual(a.request, { startNs: 100, endNs: 100, bytes: q1.length, streamOffset: hsClientBytes });
  assert.equal(a.response?.bytes, ok(1, 3, 0).length);
  assert.equal(a.response?.startNs, 200);
  assert.equal(a.data.response?.affectedRows, 3);
  assert.equal(b.request?.streamOffset, hsClientBytes + q1.length);
  const hsServerBytes = hs.filter((o) => o.op === 'feed' && o.from === 'server').reduce((n, o) => n + (o as { data: Buffer }).data.length, 0);
  assert.deepEqual(b.response, { startNs: 400, endNs: 500, bytes: rs.length, streamOffset: hsServerBytes + ok(1, 3, 0).length });
  assert.equal(b.data.response?.numRows, 1);
});

test('CLIENT_DEPRECATE_EOF: rows end at the OK packet with the 0xfe header', () => {
  const run = runOps(
    timed([
      ...connect(CLIENT_CAPS_8),
      c(comQuery('SELECT id, name FROM items')),
      // no EOF after the definitions; rows; OK(0xfe)
      s(resultSet(1, ITEMS, [['1', 'apple'], ['2', null], ['3', 'fig']], { deprecateEof: true })),
      // zero rows: the definitions are directly followed by the OK(0xfe)
      c(comQuery('SELECT id, name FROM items WHERE 0')),
      s(resultSet(1, ITEMS, [], { deprecateEof: true })),
      c(comQuery('DELETE FROM items')),
      s(ok(1, 3)),
    ]),
    { sendResponse: true },
  );
  assert.deepEqual(run.errors, []);
  assert.equal(run.txns.length, 3);
  assert.equal(run.txns[0].data.response?.numRows, 3);
  assert.deepEqual(run.txns[0].data.response?.rows, [['1', 'apple'], ['2', 'NULL'], ['3', 'fig']]);
  assert.equal(run.txns[1].data.response?.numRows, 0);
  assert.equal(run.txns[1].data.response?.numFields, 2);
  assert.equal(run.txns[2].data.request?.method, 'DELETE');
  assert.equal(run.txns[2].data.response?.affectedRows, 3);
});

test('CLIENT_DEPRECATE_EOF without the handshake: told apart by the packets (EOF is 5 bytes, OK at least 7)', () => {
  for (const deprecateEof of [true, false]) {
    const run = runOps(
      timed([
        c(comQuery('SELECT id, name FROM items')),
        s(resultSet(1, ITEMS, [['1', 'apple'], ['2', 'pear']], { deprecateEof })),
        c(comQuery('SELECT id, name FROM items WHERE 0')),
        s(resultSet(1, ITEMS, [], { deprecateEof })),
        c(comQuery('SELECT 1')),
        s(resultSet(1, [{ schema: '', table: '', name: '1' }], [['1']], { deprecateEof })),
      ]),
    );
    assert.deepEqual(run.errors, []);
    assert.deepEqual(
      run.txns.map((t) => t.data.response?.numRows),
      [2, 0, 1],
      `deprecateEof=${deprecateEof}`,
    );
    assert.equal(run.session.pending(), 0);
  }
});

test('OK: affected rows and last insert id; ERR: code, SQLSTATE and message', () => {
  const run = runOps(
    timed([
      ...connect(CLIENT_CAPS_OLD),
      c(comQuery("INSERT INTO items (name) VALUES ('kiwi')")),
      s(ok(1, 1, 4242)),
      c(comQuery('SELECT * FROM nope')),
      s(err(1, 1146, '42S02', "Table 'shop.nope' doesn't exist")),
    ]),
  );
  assert.equal(run.txns.length, 2);
  const [ins, bad] = run.txns;
  assert.equal(ins.data.request?.method, 'INSERT');
  assert.equal(ins.data.response?.kind, 'ok');
  assert.equal(ins.data.response?.affectedRows, 1);
  assert.equal(ins.data.response?.insertId, 4242);
  assert.equal(bad.data.response?.kind, 'error');
  assert.equal(bad.data.response?.errorCode, 1146);
  assert.equal(bad.data.response?.sqlState, '42S02');
  assert.equal(bad.data.response?.errorMessage, "Table 'shop.nope' doesn't exist");
});

test('method: first word upper-cased, whitespace, CR/LF and comments skipped; query trimmed', () => {
  const cases: Array<[string, string, string]> = [
    ['  \r\n\tselect 1 \r\n', 'SELECT', 'select 1'],
    ['SELECT\r\n\t1;', 'SELECT', 'SELECT\r\n\t1;'],
    ['/* app=shop */ UPDATE t SET a=1', 'UPDATE', '/* app=shop */ UPDATE t SET a=1'],
    ['/*!40101 SET NAMES utf8 */', 'SET', '/*!40101 SET NAMES utf8 */'],
    ['-- hint\nDELETE FROM t', 'DELETE', '-- hint\nDELETE FROM t'],
    ['(SELECT 1) UNION (SELECT 2)', 'SELECT', '(SELECT 1) UNION (SELECT 2)'],
    ['show tables', 'SHOW', 'show tables'],
  ];
  for (const [sql, method, query] of cases) {
    const run = runOps([c(comQuery(sql)), s(ok(1))]);
    assert.equal(run.txns[0].data.request?.method, method, sql);
    assert.equal(run.txns[0].data.request?.query, query, sql);
  }
});

test('several result sets (SERVER_MORE_RESULTS_EXISTS) are one transaction', () => {
  for (const deprecateEof of [false, true]) {
    const first = resultSet(1, [{ schema: '', table: '', name: 'one' }], [['1']], { deprecateEof, status: STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS });
    const n1 = deprecateEof ? 4 : 5;
    const second = resultSet(1 + n1, ITEMS, [['1', 'a'], ['2', 'b']], { deprecateEof, status: STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS });
    const n2 = deprecateEof ? 6 : 7;
    const run = runOps(
      timed([
        c(comQuery('CALL two_sets()')),
        s([first, second, ok(1 + n1 + n2, 0, 0)]),
        c(comQuery('SELECT 2')),
        s(resultSet(1, [{ schema: '', table: '', name: '2' }], [['2']], { deprecateEof })),
      ]),
      { sendResponse: true },
    );
    assert.deepEqual(run.errors, []);
    assert.equal(run.txns.length, 2);
    const r = run.txns[0].data.response!;
    assert.equal(r.kind, 'resultset');
    assert.equal(r.numResults, 2);
    assert.equal(r.numRows, 3);
    assert.equal(r.numFields, 1);
    assert.deepEqual(r.fields, ['one']);
    assert.deepEqual(r.rows, [['1']]);
    assert.deepEqual(r.tables, ['shop.items']);
    assert.equal(run.txns[0].response?.bytes, first.length + second.length + ok(0).length);
    assert.equal(run.txns[1].data.request?.query, 'SELECT 2');
  }
});

test('multi-statement COM_QUERY: OK packets with SERVER_MORE_RESULTS_EXISTS, then a result set', () => {
  const run = runOps(
    timed([
      c(comQuery('UPDATE t SET a = 1; SELECT 1')),
      s([ok(1, 5, 0, STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS), resultSet(2, [{ schema: '', table: '', name: '1' }], [['1']])]),
    ]),
  );
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0].data.response?.numRows, 1);
  assert.equal(run.txns[0].data.response?.affectedRows, 5);
  assert.equal(run.txns[0].data.response?.kind, 'resultset');
});

function preparedStatementOps(deprecateEof: boolean) {
  const sql = 'SELECT id, name, created FROM items WHERE id > ? AND name <> ? AND score < ?';
  const cols = [
    { schema: 'shop', table: 'items', name: 'id', type: T.LONG },
    { schema: 'shop', table: 'items', name: 'name', type: T.VAR_STRING },
    { schema: 'shop', table: 'items', name: 'created', type: T.DATETIME },
  ];
  let seq = 1;
  const prep: Buffer[] = [prepareOk(seq++, 7, 3, 3)];
  for (let i = 0; i < 3; i++) prep.push(columnDef(seq++, '', '', '?', T.LONGLONG));
  if (!deprecateEof) prep.push(eof(seq++));
  for (const col of cols) prep.push(columnDef(seq++, col.schema, col.table, col.name, col.type));
  if (!deprecateEof) prep.push(eof(seq++));
  const execResponse = (rows: Array<[number, string | null, Date]>) => {
    let q = 1;
    const out: Buffer[] = [columnCount(q++, 3)];
    for (const col of cols) out.push(columnDef(q++, col.schema, col.table, col.name, col.type));
    if (!deprecateEof) out.push(eof(q++));
    for (const [id, name, created] of rows)
      out.push(
        binaryRow(q++, [
          { type: T.LONG, value: id },
          { type: T.VAR_STRING, value: name },
          { type: T.DATETIME, value: created },
        ]),
      );
    out.push(deprecateEof ? okEof(q++) : eof(q++));
    return Buffer.concat(out);
  };
  const when = new Date(Date.UTC(2024, 4, 14, 9, 21, 7));
  return {
    sql,
    ops: timed([
      c(comStmtPrepare(sql)),
      s(prep),
      c(
        comStmtExecute(7, [
          { type: T.LONGLONG, value: -5n },
          { type: T.VAR_STRING, value: 'pear' },
          { type: T.DOUBLE, value: 2.5 },
        ]),
      ),
      s(execResponse([
        [1, 'apple', when],
        [3, null, when],
      ])),
      // same statement, types not sent again
      c(
        comStmtExecute(
          7,
          [
            { type: T.LONGLONG, value: 100n },
            { type: T.VAR_STRING, value: 'fig' },
            { type: T.DOUBLE, value: -1 },
          ],
          false,
        ),
      ),
      s(execResponse([])),
      c(comStmtReset(7)),
      s(ok(1)),
      c(comStmtClose(7)),
      // after the close the id means nothing
      c(comStmtExecute(7, [])),
      s(err(1, 1243, 'HY000', 'Unknown prepared statement handler (7) given to mysqld_stmt_execute')),
    ]),
  };
}

test('prepared statements: PREPARE maps the id to the SQL, EXECUTE reports it with decoded parameters and binary rows', () => {
  for (const deprecateEof of [false, true]) {
    const { sql, ops } = preparedStatementOps(deprecateEof);
    const run = runOps(ops, { sendResponse: true });
    assert.deepEqual(run.errors, [], `deprecateEof=${deprecateEof}`);
    assert.equal(run.txns.length, 5, `deprecateEof=${deprecateEof}`);
    const [prep, ex1, ex2, reset, unknown] = run.txns;
    assert.equal(prep.data.request?.method, 'PREPARE');
    assert.equal(prep.data.request?.query, sql);
    assert.equal(prep.data.response?.kind, 'prepare');
    assert.equal(prep.data.response?.statementId, 7);
    assert.equal(prep.data.response?.numParams, 3);

    assert.equal(ex1.data.request?.method, 'SELECT');
    assert.equal(ex1.data.request?.query, sql);
    assert.deepEqual(ex1.data.request?.params, ['-5', 'pear', '2.5']);
    assert.equal(ex1.data.response?.numRows, 2);
    assert.deepEqual(ex1.data.response?.fields, ['id', 'name', 'created']);
    assert.deepEqual(ex1.data.response?.rows, [
      ['1', 'apple', '2024-05-14 09:21:07'],
      ['3', 'NULL', '2024-05-14 09:21:07'],
    ]);
    assert.deepEqual(ex1.data.response?.tables, ['shop.items']);
    assert.deepEqual(ex2.data.request?.params, ['100', 'fig', '-1']);
    assert.equal(ex2.data.response?.numRows, 0);

    assert.equal(reset.data.request?.method, 'STMT_RESET');
    assert.equal(reset.data.request?.statementId, 7);

    assert.equal(unknown.data.request?.method, 'EXECUTE');
    assert.equal(unknown.data.request?.query, 'Request Execute Statement');
    assert.deepEqual(unknown.notes, [NOTE_UNKNOWN_STATEMENT]);
    assert.equal(unknown.data.response?.errorCode, 1243);
    assert.equal(run.session.pending(), 0);
  }
});

test('prepared statements without the handshake: the optional EOFs are recognised', () => {
  for (const deprecateEof of [false, true]) {
    const { ops } = preparedStatementOps(deprecateEof);
    const run = runOps(ops);
    assert.equal(run.txns.length, 5, `deprecateEof=${deprecateEof}`);
    assert.deepEqual(
      run.txns.map((t) => t.data.response?.numRows),
      [0, 2, 0, 0, 0],
    );
    assert.equal(run.txns[0].response?.bytes, (ops[1] as { data: Buffer }).data.length);
  }
});

test('PREPARE of a statement with neither parameters nor columns', () => {
  const run = runOps(timed([c(comStmtPrepare('DO 1')), s(prepareOk(1, 3, 0, 0)), c(comStmtExecute(3, [])), s(ok(1))]));
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[1].data.request?.query, 'DO 1');
  assert.equal(run.txns[1].data.request?.method, 'DO');
});

test('COM_INIT_DB, USE and session tracking change the database of later transactions', () => {
  const run = runOps(
    timed([
      ...connect(CLIENT_CAPS_8, 'app', null),
      c(comQuery('SELECT 1')),
      s(ok(1)),
      c(comInitDb('shop')),
      s(ok(1)),
      c(comQuery('SELECT 2')),
      s(ok(1)),
      c(comQuery('use `inventory`')),
      s(ok(1)),
      c(comQuery('SELECT 3')),
      s(ok(1)),
      // MySQL 8 announces the new schema itself
      c(comQuery("CALL switch_schema('billing')")),
      s(okSchemaChange(1, 'billing')),
      c(comQuery('SELECT 4')),
      s(ok(1)),
    ]),
  );
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.method, t.data.database]),
    [
      ['SELECT', undefined],
      ['USE', undefined],
      ['SELECT', 'shop'],
      ['USE', 'shop'],
      ['SELECT', 'inventory'],
      ['CALL', 'inventory'],
      ['SELECT', 'billing'],
    ],
  );
  assert.equal(run.txns[1].data.request?.query, 'USE shop');
  assert.equal(run.txns[1].data.request?.schema, 'shop');
});

test('a failed COM_INIT_DB leaves the database as it was', () => {
  const run = runOps(timed([...connect(), c(comInitDb('nope')), s(err(1, 1049, '42000', "Unknown database 'nope'")), c(comQuery('SELECT 1')), s(ok(1))]));
  assert.equal(run.txns[1].data.database, 'shop');
});

test('COM_QUIT and COM_STMT_CLOSE get no answer and are no transaction; COM_PING is reported only when asked', () => {
  const ops = timed([
    ...connect(),
    c(comSimple(COM_PING)),
    s(ok(1)),
    c(comQuery('SELECT 1')),
    s(ok(1)),
    c(comStmtClose(9)),
    c(comSimple(COM_PING)),
    s(ok(1)),
    c(comSimple(COM_QUIT)),
  ]);
  const quiet = runOps(ops);
  assert.deepEqual(
    quiet.txns.map((t) => t.data.request?.query),
    ['SELECT 1'],
  );
  quiet.session.close(1000);
  assert.equal(quiet.txns.length, 1);
  const loud = runOps(ops, { reportPings: true });
  assert.deepEqual(
    loud.txns.map((t) => t.data.request?.method),
    ['PING', 'SELECT', 'PING'],
  );
  assert.equal(loud.txns[0].data.request?.query, 'COM_PING');
});

test('COM_STATISTICS: the answer is a bare string packet', () => {
  const run = runOps(timed([c(comSimple(COM_STATISTICS)), s(packet(1, 'Uptime: 5  Threads: 1  Questions: 3')), c(comQuery('SELECT 1')), s(ok(1))]));
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[0].data.request?.method, 'STATISTICS');
  assert.equal(run.txns[0].data.response?.kind, 'other');
});

test('pipelined commands are queued and paired in order (Packetbeat drops all but the last)', () => {
  const run = runOps(
    timed([
      c([comQuery('INSERT INTO t VALUES (1)'), comQuery('SELECT a FROM t'), comQuery('DELETE FROM t')]),
      s([ok(1, 1, 1), resultSet(1, [{ schema: 'db', table: 't', name: 'a' }], [['1']]), ok(1, 1)]),
    ]),
  );
  assert.equal(run.txns.length, 3);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.method, t.data.response?.kind]),
    [
      ['INSERT', 'ok'],
      ['SELECT', 'resultset'],
      ['DELETE', 'ok'],
    ],
  );
  assert.equal(run.txns[0].data.response?.insertId, 1);
});

test('pipelined: the second command arrives while the first response is streaming', () => {
  const big = resultSet(1, ITEMS, Array.from({ length: 50 }, (_, i) => [String(i), 'x'.repeat(i)]));
  const run = runOps([
    { op: 'feed', from: 'client', data: comQuery('SELECT id, name FROM items'), ts: 1 },
    { op: 'feed', from: 'server', data: big.subarray(0, 300), ts: 2 },
    { op: 'feed', from: 'client', data: comQuery('SELECT 2'), ts: 3 },
    { op: 'feed', from: 'server', data: big.subarray(300), ts: 4 },
    { op: 'feed', from: 'server', data: ok(1), ts: 5 },
  ]);
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[0].data.response?.numRows, 50);
  assert.equal(run.txns[1].data.request?.query, 'SELECT 2');
  assert.equal(run.txns[1].response?.startNs, 5);
});

test('LOAD DATA LOCAL INFILE: the file contents belong to the request, the OK ends it', () => {
  const run = runOps(
    timed([
      c(comQuery("LOAD DATA LOCAL INFILE '/tmp/items.csv' INTO TABLE items")),
      s(packet(1, Buffer.concat([Buffer.from([0xfb]), Buffer.from('/tmp/items.csv')]))),
      c([packet(2, 'a,1\nb,2\n'), packet(3, '')]),
      s(ok(4, 2)),
      c(comQuery('SELECT 1')),
      s(ok(1)),
    ]),
  );
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[0].data.response?.affectedRows, 2);
  assert.equal(run.txns[0].request?.bytes, comQuery("LOAD DATA LOCAL INFILE '/tmp/items.csv' INTO TABLE items").length + 12 + 4);
});

test('COM_CHANGE_USER: auth switch inside, the new user and schema apply afterwards', () => {
  const change = packet(
    0,
    Buffer.concat([Buffer.from([0x11]), Buffer.from('report\0'), Buffer.from([AUTH_RESPONSE.length]), AUTH_RESPONSE, Buffer.from('stats\0'), Buffer.from([0x2d, 0])]),
  );
  const run = runOps(
    timed([
      ...connect(),
      c(change),
      s(packet(1, Buffer.concat([Buffer.from([0xfe]), Buffer.from('mysql_native_password\0'), SCRAMBLE, Buffer.from([0])]))),
      c(packet(2, AUTH_RESPONSE)),
      s(ok(3)),
      c(comQuery('SELECT 1')),
      s(ok(1)),
    ]),
  );
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[0].data.request?.method, 'CHANGE_USER');
  assert.equal(run.txns[0].data.user, 'app');
  assert.equal(run.txns[1].data.user, 'report');
  assert.equal(run.txns[1].data.database, 'stats');
  assert.ok(!JSON.stringify(run.txns).includes(AUTH_RESPONSE.toString('hex')));
});

test('TLS (SSLRequest): the connection is marked encrypted and the rest is ignored silently', () => {
  const run = newRun();
  apply(run, [s(greeting()), c(sslRequest(CLIENT_CAPS_8))]);
  // TLS records from here on
  const tls = Buffer.from('16030100f4010000f00303' + 'ab'.repeat(200), 'hex');
  for (let i = 0; i < 20; i++) apply(run, [c(tls, i), s(tls, i)]);
  run.session.close(100);
  assert.deepEqual(run.txns, []);
  assert.deepEqual(run.errors, []);
  assert.equal(run.session.bufferedBytes(), 0);
});

function compressed(seq: number, payload: Buffer): Buffer {
  // uncompressed payload inside the compressed protocol (length 0 = not compressed)
  const h = Buffer.alloc(7);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  h.writeUIntLE(0, 4, 3);
  return Buffer.concat([h, payload]);
}

test('compressed protocol: flagged and only framed, no garbage decoded', () => {
  const run = runOps([
    { op: 'feed', from: 'server', data: greeting('8.0.36', SERVER_CAPS | CAPS.COMPRESS), ts: 1 },
    { op: 'feed', from: 'client', data: handshakeResponse(CLIENT_CAPS_OLD | CAPS.COMPRESS, 'app', 'shop'), ts: 2 },
    { op: 'feed', from: 'server', data: ok(2), ts: 3 },
    { op: 'feed', from: 'client', data: compressed(0, comQuery('SELECT 1')), ts: 10 },
    // a deflated answer: opaque bytes
    { op: 'feed', from: 'server', data: Buffer.concat([Buffer.from([20, 0, 0, 1, 40, 0, 0]), Buffer.alloc(20, 0x78)]), ts: 11 },
    { op: 'feed', from: 'client', data: compressed(0, comQuery('SELECT 2')), ts: 20 },
    { op: 'feed', from: 'server', data: compressed(1, ok(1)), ts: 21 },
    { op: 'feed', from: 'client', data: compressed(0, comSimple(COM_QUIT)), ts: 30 },
  ]);
  run.session.close(40);
  assert.equal(run.txns.length, 2);
  for (const t of run.txns) {
    assert.equal(t.data.compressed, true);
    assert.deepEqual(t.notes, [NOTE_COMPRESSED]);
    assert.equal(t.data.request?.method, '');
    assert.equal(t.data.response?.numRows, 0);
  }
  assert.equal(run.txns[0].request?.startNs, 10);
  assert.equal(run.txns[0].response?.bytes, 27);
  assert.equal(run.txns[1].response?.endNs, 21);
  assert.ok(run.errors.some(([r, fatal]) => /compressed/.test(r) && !fatal));
});

test('access denied ends the connection phase without a transaction', () => {
  const run = runOps(timed([s(greeting()), c(handshakeResponse(CLIENT_CAPS_8, 'app', 'shop')), s(err(2, 1045, '28000', "Access denied for user 'app'@'localhost'"))]));
  run.session.close(10);
  assert.deepEqual(run.txns, []);
});

test('unmatched: expire reports old requests, close reports the rest; a partial response is kept', () => {
  const run = runOps([
    { op: 'feed', from: 'client', data: comQuery('SELECT SLEEP(100)'), ts: 10 },
    { op: 'feed', from: 'client', data: comQuery('SELECT 2'), ts: 20 },
  ]);
  assert.equal(run.session.pending(), 2);
  run.session.expire(15);
  assert.equal(run.txns.length, 1);
  assert.deepEqual(run.txns[0].notes, [NOTE_UNMATCHED_REQUEST]);
  assert.equal(run.txns[0].response, undefined);
  assert.equal(run.session.pending(), 1);
  run.session.expire(15);
  assert.equal(run.txns.length, 1);
  run.session.close(30);
  assert.equal(run.txns.length, 2);
  assert.equal(run.txns[1].data.request?.query, 'SELECT 2');
  assert.equal(run.session.pending(), 0);

  // a response that stops halfway
  const rs = resultSet(1, ITEMS, [['1', 'a'], ['2', 'b']]);
  const half = runOps([
    { op: 'feed', from: 'client', data: comQuery('SELECT id, name FROM items'), ts: 1 },
    { op: 'feed', from: 'server', data: rs.subarray(0, rs.length - 12), ts: 2 },
  ]);
  half.session.expire(5);
  assert.equal(half.txns.length, 1);
  assert.equal(half.txns[0].data.response?.incomplete, true);
  assert.equal(half.txns[0].data.response?.numRows, 1);
});

test('more commands waiting than maxPending: the oldest are reported unmatched, and said so', () => {
  const run = newRun({ maxPending: 4 });
  for (let i = 0; i < 10; i++) apply(run, [c(comQuery(`SELECT ${i}`), i + 1)]);
  assert.equal(run.session.pending(), 4);
  assert.equal(run.txns.length, 6);
  assert.ok(run.txns.every((t) => t.notes.includes(NOTE_UNMATCHED_REQUEST)));
  assert.ok(run.errors.length > 0);
});

test('a request longer than maxQueryBytes is cut and flagged, its bytes all counted', () => {
  const sql = 'SELECT ' + "'x', ".repeat(5000) + '1';
  const q = comQuery(sql);
  const run = runOps([c(q, 1), s(ok(1), 2)], { maxQueryBytes: 1024 });
  const r = run.txns[0].data.request!;
  assert.equal(r.truncated, true);
  assert.equal(r.query, sql.slice(0, 1024).trimEnd());
  assert.equal(r.method, 'SELECT');
  assert.equal(run.txns[0].request?.bytes, q.length);
});

test('a gap inside a long query keeps the framing; lost bytes add the note, max_payload cuts do not', () => {
  for (const lost of [true, false]) {
    const q = comQuery('INSERT INTO blobs VALUES (' + "'y'".repeat(3000) + ')');
    const run = runOps([
      { op: 'feed', from: 'client', data: q.subarray(0, 500), ts: 1 },
      { op: 'gap', from: 'client', length: 8000, ts: 1, lost },
      { op: 'feed', from: 'client', data: q.subarray(8500), ts: 2 },
      { op: 'feed', from: 'server', data: ok(1, 1), ts: 3 },
      { op: 'feed', from: 'client', data: comQuery('SELECT 1'), ts: 4 },
      { op: 'feed', from: 'server', data: ok(1), ts: 5 },
    ]);
    assert.equal(run.txns.length, 2);
    assert.equal(run.txns[0].data.request?.method, 'INSERT');
    assert.equal(run.txns[0].request?.bytes, q.length);
    assert.equal(run.txns[0].request?.endNs, 2);
    assert.deepEqual(run.txns[0].notes, lost ? [NOTE_REQUEST_LOSS] : []);
    assert.equal(run.txns[1].request?.streamOffset, q.length);
  }
});

test('a row packet starting with 0xfe that is 16 MiB long is a row, not the end', () => {
  // text row whose first cell has an 8-byte length: only possible in a multi-packet row
  const cellLen = 0xffffff + 100;
  const payloadLen = 9 + cellLen;
  const first = Buffer.alloc(4 + 9);
  first.writeUIntLE(0xffffff, 0, 3);
  first[3] = 4;
  first[4] = 0xfe;
  first.writeBigUInt64LE(BigInt(cellLen), 5);
  const rest = payloadLen - 0xffffff;
  const second = Buffer.alloc(4);
  second.writeUIntLE(rest, 0, 3);
  second[3] = 5;
  const run = runOps([
    { op: 'feed', from: 'client', data: comQuery('SELECT blob FROM big'), ts: 1 },
    { op: 'feed', from: 'server', data: Buffer.concat([columnCount(1, 1), columnDef(2, 'db', 'big', 'blob'), eof(3), first]), ts: 2 },
    { op: 'gap', from: 'server', length: 0xffffff - 9, ts: 3, lost: false },
    { op: 'feed', from: 'server', data: second, ts: 4 },
    { op: 'gap', from: 'server', length: rest, ts: 5, lost: false },
    { op: 'feed', from: 'server', data: Buffer.concat([textRow(6, ['small']), eof(7)]), ts: 6 },
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0].data.response?.numRows, 2);
  assert.equal(run.txns[0].response?.endNs, 6);
  assert.deepEqual(run.txns[0].notes, []);
});

test('a 16 MiB query in 0xffffff-byte packets: joined, counted, never buffered whole', () => {
  const len = 0xffffff + 5000;
  const payload = Buffer.alloc(len, 0x20);
  payload[0] = 0x03;
  payload.write('INSERT INTO big VALUES', 1);
  const p1 = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0]), payload.subarray(0, 0xffffff)]);
  const p2 = packet(1, payload.subarray(0xffffff));
  const wire = Buffer.concat([p1, p2]);
  const run = newRun();
  let maxBuffered = 0;
  for (let i = 0; i < wire.length; i += 65536) {
    run.session.feed('client', wire.subarray(i, i + 65536), 1);
    maxBuffered = Math.max(maxBuffered, run.session.bufferedBytes());
  }
  // answered with sequence id 2 (the request used 0 and 1)
  run.session.feed('server', ok(2, 1), 2);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0].request?.bytes, wire.length);
  assert.equal(run.txns[0].data.request?.method, 'INSERT');
  assert.equal(run.txns[0].data.request?.truncated, true);
  assert.ok(maxBuffered <= 128 * 1024, `buffered ${maxBuffered}`);
});

test('errors from the sink do not break the session', () => {
  let calls = 0;
  const errors: string[] = [];
  const { createMysqlSession } = require('../../../../src/protocols/mysql/session') as typeof import('../../../../src/protocols/mysql/session');
  const session = createMysqlSession({
    onTransaction: () => {
      calls++;
      throw new Error('sink down');
    },
    onError: (r) => errors.push(r),
  });
  session.feed('client', comQuery('SELECT 1'), 1);
  session.feed('server', ok(1), 2);
  session.feed('client', comQuery('SELECT 2'), 3);
  session.feed('server', ok(1), 4);
  assert.equal(calls, 2);
  assert.ok(errors.some((e) => /sink/.test(e)));
});

test('unsolicited ERR from the server (e.g. before closing an idle connection) is an unmatched response', () => {
  const run = runOps(timed([...connect(), s(err(0, 4031, 'HY000', 'The client was disconnected by the server because of inactivity.'))]));
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0].request, undefined);
  assert.equal(run.txns[0].data.response?.errorCode, 4031);
});

test('session started mid-connection: the first command is found, earlier server bytes do not matter', () => {
  const rs = resultSet(1, ITEMS, [['1', 'apple']]);
  const run = runOps(
    timed([
      // tail of a response to a command the session never saw
      s(rs.subarray(17)),
      c(comQuery('SELECT id, name FROM items')),
      s(rs),
    ]),
  );
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0].data.response?.numRows, 1);
});

