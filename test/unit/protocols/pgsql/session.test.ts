import { test } from 'node:test';
import assert from 'node:assert/strict';

import { apply, be, fe, feed, gap, newRun, pgError, prng, splitOps, summary, type Op } from './helpers';

// ---- a realistic connection: psql against PostgreSQL 15 ---------------------------

const STARTUP: Op[] = [
  feed('client', fe.sslRequest(), 10),
  feed('server', be.sslNo(), 20),
  feed('client', fe.startup({ user: 'alice', database: 'shop', application_name: 'psql', client_encoding: 'UTF8' }), 30),
  feed('server', be.authMd5(), 40),
  feed('client', fe.password('md5c7c3ed8b9aa5eddb3df32c667f34199f'), 50),
  feed(
    'server',
    [
      be.authOk(),
      be.parameterStatus('application_name', 'psql'),
      be.parameterStatus('server_version', '15.14'),
      be.parameterStatus('TimeZone', 'Etc/UTC'),
      be.backendKeyData(4242, 0x5eed),
      be.ready('I'),
    ],
    60,
  ),
];

const ITEMS_RESULT = [
  be.rowDescription(['id', 'name', 'price']),
  be.dataRow(['1', 'apple', '1.50']),
  be.dataRow(['2', 'pear', '4.50']),
  be.dataRow(['3', 'plum, red', null]),
  be.commandComplete('SELECT 3'),
];

test('startup (SSLRequest answered N, md5 auth, parameters, ReadyForQuery) makes no transaction', () => {
  const run = apply(newRun(), STARTUP);
  run.session.close(100);
  assert.deepEqual(run.txns, []);
  assert.deepEqual(run.errors, []);
  assert.equal(run.session.pending(), 0);
});

test('simple query: one transaction; bytes exclude ReadyForQuery; user and database from the startup', () => {
  const q = fe.query('select * from items order by id;');
  const resp = Buffer.concat(ITEMS_RESULT);
  const run = apply(newRun(), [...STARTUP, feed('client', q, 1000), feed('server', [resp, be.ready()], 2000)]);
  assert.equal(run.txns.length, 1);
  const t = run.txns[0]!;
  assert.equal(t.data.request?.query, 'select * from items order by id');
  assert.equal(t.data.request?.user, 'alice');
  assert.equal(t.data.request?.database, 'shop');
  assert.equal(t.data.request?.protocol, 'simple');
  const startupBytes = fe.sslRequest().length + fe.startup({ user: 'alice', database: 'shop', application_name: 'psql', client_encoding: 'UTF8' }).length + fe.password('md5c7c3ed8b9aa5eddb3df32c667f34199f').length;
  assert.deepEqual(t.request, { startNs: 1000, endNs: 1000, bytes: q.length, streamOffset: startupBytes });
  assert.equal(t.response?.bytes, resp.length);
  assert.equal(t.response?.startNs, 2000);
  assert.equal(t.data.response?.numRows, 3);
  assert.equal(t.data.response?.numFields, 3);
  assert.equal(t.data.response?.tag, 'SELECT 3');
  assert.equal(t.data.response?.rowsAffected, 3);
  assert.equal(t.data.response?.rows, undefined, 'rows are kept only for send_response');
  assert.deepEqual(t.notes, []);
  assert.equal(run.session.pending(), 0);
});

test('the password message is never decoded or exported', () => {
  const secret = 'SCRAM-client-final-proof-s3cr3t';
  const run = apply(newRun({ sendResponse: true }), [
    ...STARTUP.slice(0, 4),
    feed('client', fe.password(secret), 50),
    ...STARTUP.slice(5),
    feed('client', fe.query('select 1'), 100),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 200),
  ]);
  assert.equal(run.txns.length, 1);
  assert.ok(!JSON.stringify(run.txns).includes('s3cr3t'));
  assert.ok(!JSON.stringify(run.errors).includes('s3cr3t'));
});

test('several statements in one Query: one transaction each, matched in order, bytes split without overlap', () => {
  const sql = "create table t(a int); insert into t values (1), (2);\nupdate t set a = a + 1 ;  select a from t";
  const q = fe.query(sql);
  const run = apply(newRun(), [
    ...STARTUP,
    feed('client', q, 1000),
    feed('server', [be.commandComplete('CREATE TABLE'), be.commandComplete('INSERT 0 2'), be.commandComplete('UPDATE 2')], 2000),
    feed('server', [be.rowDescription(['a']), be.dataRow(['2']), be.dataRow(['3']), be.commandComplete('SELECT 2'), be.ready()], 3000),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.tag, t.data.response?.rowsAffected, t.data.response?.numRows]),
    [
      ['create table t(a int)', 'CREATE TABLE', undefined, 0],
      ['insert into t values (1), (2)', 'INSERT 0 2', 2, 0],
      ['update t set a = a + 1', 'UPDATE 2', 2, 0],
      ['select a from t', 'SELECT 2', 2, 2],
    ],
  );
  // the statements share the message: each owns a slice, the slices add up to it
  const reqs = run.txns.map((t) => t.request!);
  assert.equal(reqs.reduce((s, r) => s + r.bytes, 0), q.length);
  for (let i = 1; i < reqs.length; i++) assert.equal(reqs[i]!.streamOffset, reqs[i - 1]!.streamOffset + reqs[i - 1]!.bytes);
  assert.ok(reqs.every((r) => r.startNs === 1000 && r.endNs === 1000));
  assert.deepEqual(
    run.txns.map((t) => [t.response!.startNs, t.response!.bytes]),
    [
      [2000, be.commandComplete('CREATE TABLE').length],
      [2000, be.commandComplete('INSERT 0 2').length],
      [2000, be.commandComplete('UPDATE 2').length],
      [3000, Buffer.concat([be.rowDescription(['a']), be.dataRow(['2']), be.dataRow(['3']), be.commandComplete('SELECT 2')]).length],
    ],
  );
});

test('an error in a multi-statement Query: the failing statement has the error, the later ones never ran', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('select 1; select 1/0; select 3'), 1000),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), pgError('22012', 'division by zero'), be.ready('I')], 2000),
    feed('client', fe.query('select 4'), 3000),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['4']), be.commandComplete('SELECT 1'), be.ready('I')], 4000),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.error?.code, t.data.response?.error?.message, t.data.response?.error?.severity]),
    [
      ['select 1', undefined, undefined, undefined],
      ['select 1/0', '22012', 'division by zero', 'ERROR'],
      ['select 4', undefined, undefined, undefined],
    ],
  );
  assert.equal(run.session.pending(), 0);
});

test('EmptyQueryResponse answers an empty or comment-only query', () => {
  const run = apply(newRun(), [
    feed('client', fe.query(''), 1),
    feed('server', [be.emptyQuery(), be.ready()], 2),
    feed('client', fe.query(' ; -- nothing'), 3),
    feed('server', [be.emptyQuery(), be.ready()], 4),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.empty, t.response?.bytes]),
    [
      ['', true, 5],
      ['', true, 5],
    ],
  );
});

test('NoticeResponse and ParameterStatus inside an answer do not end it or make it an error', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('drop table if exists nope; set application_name = x'), 1),
    feed('server', [be.notice('table "nope" does not exist, skipping'), be.commandComplete('DROP TABLE'), be.parameterStatus('application_name', 'x'), be.commandComplete('SET'), be.ready()], 2),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.tag, t.data.response?.error]),
    [
      ['drop table if exists nope', 'DROP TABLE', undefined],
      ['set application_name = x', 'SET', undefined],
    ],
  );
});

// ---- extended protocol ----------------------------------------------------------------

test('extended query: Parse/Bind/Describe/Execute/Sync is one transaction; response bytes exclude 1, 2 and Z', () => {
  const req = [fe.parse('', 'select name from items where id = $1'), fe.bind('', '', ['2']), fe.describe('P', ''), fe.execute(''), fe.sync()];
  const counted = [be.rowDescription(['name']), be.dataRow(['pear']), be.commandComplete('SELECT 1')];
  const run = apply(newRun(), [feed('client', req, 100), feed('server', [be.parseComplete(), be.bindComplete(), ...counted, be.ready()], 200)]);
  assert.equal(run.txns.length, 1);
  const t = run.txns[0]!;
  assert.equal(t.data.request?.query, 'select name from items where id = $1');
  assert.equal(t.data.request?.protocol, 'extended');
  assert.equal(t.data.request?.statement, '');
  assert.equal(t.data.request?.params, 1);
  assert.equal(t.request?.bytes, Buffer.concat(req).length, 'the whole group with its Sync');
  assert.equal(t.request?.streamOffset, 0);
  assert.equal(t.response?.bytes, Buffer.concat(counted).length);
  assert.equal(t.response?.streamOffset, be.parseComplete().length + be.bindComplete().length);
  assert.equal(t.data.response?.numRows, 1);
  assert.equal(t.data.response?.numFields, 1);
});

test('a named prepared statement executed many times: one transaction per Execute, each with its SQL', () => {
  const sql = 'select id, name from items where id = $1';
  const ops: Op[] = [
    feed('client', [fe.parse('item-by-id', sql), fe.bind('', 'item-by-id', ['1']), fe.describe('P', ''), fe.execute(''), fe.sync()], 100),
    feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription(['id', 'name']), be.dataRow(['1', 'apple']), be.commandComplete('SELECT 1'), be.ready()], 200),
  ];
  for (let i = 2; i <= 4; i++) {
    ops.push(feed('client', [fe.bind('', 'item-by-id', [String(i)]), fe.describe('P', ''), fe.execute(''), fe.sync()], 100 * i + 100));
    ops.push(feed('server', [be.bindComplete(), be.rowDescription(['id', 'name']), be.dataRow([String(i), 'x']), be.commandComplete('SELECT 1'), be.ready()], 100 * i + 150));
  }
  const run = apply(newRun(), ops);
  assert.equal(run.txns.length, 4);
  for (const t of run.txns) {
    assert.equal(t.data.request?.query, sql);
    assert.equal(t.data.request?.statement, 'item-by-id');
    assert.equal(t.data.response?.numRows, 1);
    assert.deepEqual(t.notes, []);
  }
  assert.equal(new Set(run.txns.map((t) => t.request!.streamOffset)).size, 4, 'distinct stream offsets');
});

test('pipelined extended queries: several Parse/Bind/Execute before one Sync pair in order', () => {
  const client = [
    fe.parse('', 'select 1'),
    fe.bind('', ''),
    fe.describe('P', ''),
    fe.execute(''),
    fe.parse('s2', 'update items set price = 1 where id = $1'),
    fe.bind('p2', 's2', ['1']),
    fe.execute('p2'),
    fe.bind('', 's2', ['2']),
    fe.execute(''),
    fe.sync(),
  ];
  const server = [
    be.parseComplete(),
    be.bindComplete(),
    be.rowDescription(['?column?']),
    be.dataRow(['1']),
    be.commandComplete('SELECT 1'),
    be.parseComplete(),
    be.bindComplete(),
    be.commandComplete('UPDATE 1'),
    be.bindComplete(),
    be.commandComplete('UPDATE 0'),
    be.ready(),
  ];
  const run = apply(newRun(), [feed('client', client, 10), feed('server', server, 20)]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.request?.portal, t.data.response?.tag]),
    [
      ['select 1', '', 'SELECT 1'],
      ['update items set price = 1 where id = $1', 'p2', 'UPDATE 1'],
      ['update items set price = 1 where id = $1', '', 'UPDATE 0'],
    ],
  );
  // requests: [P B D E] [P B E] [B E S]
  const lens = client.map((b) => b.length);
  assert.deepEqual(
    run.txns.map((t) => t.request!.bytes),
    [lens[0]! + lens[1]! + lens[2]! + lens[3]!, lens[4]! + lens[5]! + lens[6]!, lens[7]! + lens[8]! + lens[9]!],
  );
  assert.deepEqual(
    run.txns.map((t) => t.response!.bytes),
    [be.rowDescription(['?column?']).length + be.dataRow(['1']).length + be.commandComplete('SELECT 1').length, be.commandComplete('UPDATE 1').length, be.commandComplete('UPDATE 0').length],
  );
});

test('pipeline mode with a Sync per query: an error in one does not disturb the next', () => {
  const group = (sql: string, v: string) => [fe.parse('', sql), fe.bind('', '', [v]), fe.describe('P', ''), fe.execute(''), fe.sync()];
  const run = apply(newRun(), [
    feed('client', [...group('select $1::int', '1'), ...group('insert into items(id) values ($1)', '1'), ...group('select $1::text', 'x')], 10),
    feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription(['int4']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 20),
    feed('server', [be.parseComplete(), be.bindComplete(), be.noData(), pgError('23505', 'duplicate key value violates unique constraint "items_pkey"'), be.ready()], 30),
    feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription(['text']), be.dataRow(['x']), be.commandComplete('SELECT 1'), be.ready()], 40),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.tag, t.data.response?.error?.code, t.response?.endNs]),
    [
      ['select $1::int', 'SELECT 1', undefined, 20],
      ['insert into items(id) values ($1)', undefined, '23505', 30],
      ['select $1::text', 'SELECT 1', undefined, 40],
    ],
  );
});

test('a failing Parse: the error is reported with its SQL; the server skips the rest up to Sync', () => {
  const run = apply(newRun(), [
    feed('client', [fe.parse('', 'selec oops'), fe.bind('', ''), fe.execute(''), fe.parse('', 'select 42'), fe.bind('', ''), fe.execute(''), fe.sync()], 10),
    feed('server', [pgError('42601', 'syntax error at or near "selec"'), be.ready()], 20),
    feed('client', [fe.parse('', 'select 43'), fe.bind('', ''), fe.execute(''), fe.sync()], 30),
    feed('server', [be.parseComplete(), be.bindComplete(), be.dataRow(['43']), be.commandComplete('SELECT 1'), be.ready()], 40),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.error?.code, t.data.response?.numRows]),
    [
      ['selec oops', '42601', 0],
      ['select 43', undefined, 1],
    ],
  );
  assert.equal(run.session.pending(), 0);
});

test('Parse/Describe/Sync without Execute makes no transaction; a failing one does', () => {
  const run = apply(newRun(), [
    feed('client', [fe.parse('s1', 'select * from items'), fe.describe('S', 's1'), fe.sync()], 10),
    feed('server', [be.parseComplete(), be.parameterDescription([]), be.rowDescription(['id']), be.ready()], 20),
    feed('client', [fe.parse('s2', 'select * from nope'), fe.describe('S', 's2'), fe.sync()], 30),
    feed('server', [pgError('42P01', 'relation "nope" does not exist'), be.ready()], 40),
    feed('client', [fe.bind('', 's1'), fe.execute(''), fe.sync()], 50),
    feed('server', [be.bindComplete(), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 60),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.error?.code]),
    [
      ['select * from nope', '42P01'],
      ['select * from items', undefined],
    ],
  );
  assert.equal(run.session.pending(), 0);
});

test('Bind to a statement whose Parse was not seen: no query, Packetbeat-style note', () => {
  const run = apply(newRun(), [
    feed('client', [fe.bind('', 'seen-before-we-started', ['1']), fe.execute(''), fe.sync()], 10),
    feed('server', [be.bindComplete(), be.commandComplete('UPDATE 1'), be.ready()], 20),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.request?.query, undefined);
  assert.equal(run.txns[0]!.data.request?.statement, 'seen-before-we-started');
  assert.deepEqual(run.txns[0]!.notes, ['The actual query being used is unknown']);
});

test('Close forgets a statement; the map of statements is bounded', () => {
  const run = apply(newRun({ maxStatements: 3 }), [
    feed('client', [fe.parse('a', 'select 1'), fe.parse('b', 'select 2'), fe.parse('c', 'select 3'), fe.parse('d', 'select 4'), fe.close('S', 'c'), fe.sync()], 10),
    feed('server', [be.parseComplete(), be.parseComplete(), be.parseComplete(), be.parseComplete(), be.closeComplete(), be.ready()], 20),
    feed('client', [fe.bind('', 'a'), fe.execute(''), fe.bind('', 'b'), fe.execute(''), fe.bind('', 'c'), fe.execute(''), fe.bind('', 'd'), fe.execute(''), fe.sync()], 30),
    feed(
      'server',
      [be.bindComplete(), be.commandComplete('SELECT 1'), be.bindComplete(), be.commandComplete('SELECT 1'), be.bindComplete(), be.commandComplete('SELECT 1'), be.bindComplete(), be.commandComplete('SELECT 1'), be.ready()],
      40,
    ),
  ]);
  assert.deepEqual(
    run.txns.map((t) => t.data.request?.query),
    [undefined, 'select 2', undefined, 'select 4'],
  );
  assert.ok(run.errors.some(([r, fatal]) => r.includes('prepared statements') && !fatal));
});

test('row-limited portal: Execute with a limit, PortalSuspended, Flush; each Execute is a transaction', () => {
  const sql = 'select g from generate_series(1, 3) g';
  const run = apply(newRun(), [
    feed('client', [fe.parse('', sql), fe.bind('', ''), fe.describe('P', ''), fe.execute('', 2), fe.flush()], 10),
    feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription(['g']), be.dataRow(['1']), be.dataRow(['2']), be.portalSuspended()], 20),
    feed('client', [fe.execute('', 2), fe.flush()], 30),
    feed('server', [be.dataRow(['3']), be.commandComplete('SELECT 1')], 40),
    feed('client', fe.sync(), 50),
    feed('server', be.ready(), 60),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.numRows, t.data.response?.suspended ?? false, t.data.response?.tag]),
    [
      [sql, 2, true, undefined],
      [sql, 1, false, 'SELECT 1'],
    ],
  );
  // each request is its Execute and the Flush after it; the answer is reported without waiting for more
  assert.equal(run.txns[1]!.request!.bytes, fe.execute('', 2).length + fe.flush().length);
  assert.equal(run.txns[0]!.request!.endNs, 10);
  assert.equal(run.session.pending(), 0);
});

test('binary result columns are rendered as text in the CSV rows', () => {
  const int4 = Buffer.alloc(4);
  int4.writeInt32BE(-7);
  const run = apply(newRun({ sendResponse: true }), [
    feed('client', [fe.parse('', 'select $1::int4, $2::bytea'), fe.bind('', '', ['-7', 'x'], [1]), fe.describe('P', ''), fe.execute(''), fe.sync()], 1),
    feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription([{ name: 'int4', type: 23, format: 1 }, { name: 'bytea', type: 17, format: 1 }]), be.dataRow([int4, Buffer.from([0xde, 0xad])]), be.commandComplete('SELECT 1'), be.ready()], 2),
  ]);
  assert.deepEqual(run.txns[0]!.data.response?.rows, [['-7', '\\xdead']]);
});

// ---- COPY ---------------------------------------------------------------------------------

test('COPY FROM STDIN is one transaction: the copy data is part of the request', () => {
  const q = fe.query('copy items (id, name) from stdin');
  const data = [fe.copyData('10\tkiwi\n'), fe.copyData('11\tlime\n'), fe.copyDone()];
  const run = apply(newRun(), [
    feed('client', q, 10),
    feed('server', be.copyIn(2), 20),
    feed('client', data.slice(0, 2), 30),
    feed('client', data[2]!, 40),
    feed('server', [be.commandComplete('COPY 2'), be.ready()], 50),
    feed('client', fe.query('select 1'), 60),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 70),
  ]);
  assert.equal(run.txns.length, 2);
  const t = run.txns[0]!;
  assert.equal(t.data.request?.query, 'copy items (id, name) from stdin');
  assert.equal(t.data.response?.copy, 'in');
  assert.equal(t.data.response?.rowsAffected, 2);
  assert.deepEqual(t.request, { startNs: 10, endNs: 40, bytes: q.length + Buffer.concat(data).length, streamOffset: 0 });
  assert.equal(t.response?.bytes, be.copyIn(2).length + be.commandComplete('COPY 2').length);
  assert.equal(run.txns[1]!.data.request?.query, 'select 1');
});

test('COPY FROM STDIN failed by the client (CopyFail) is one transaction with the error', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('copy items from stdin'), 10),
    feed('server', be.copyIn(3), 20),
    feed('client', [fe.copyData('1\ta\t1\n'), fe.copyFail('aborted by user')], 30),
    feed('server', [pgError('57014', 'COPY from stdin failed: aborted by user'), be.ready()], 40),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.response?.error?.code, '57014');
  assert.equal(run.txns[0]!.request!.endNs, 30);
});

test('COPY TO STDOUT is one transaction; CopyData messages are its rows', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('copy items to stdout'), 10),
    feed('server', [be.copyOut(3), be.copyData('1\tapple\t1.50\n'), be.copyData('2\tpear\t4.50\n'), be.copyDone(), be.commandComplete('COPY 2'), be.ready()], 20),
  ]);
  assert.equal(run.txns.length, 1);
  const r = run.txns[0]!.data.response!;
  assert.equal(r.copy, 'out');
  assert.equal(r.numRows, 2);
  assert.equal(r.rowsAffected, 2);
});

// ---- SSL / GSS / cancel / mid-stream -------------------------------------------------------

test('SSLRequest answered S: the rest is TLS, ignored silently', () => {
  const tls = Buffer.from('160301020001000200030303' + 'ab'.repeat(200), 'hex');
  const run = apply(newRun(), [
    feed('client', fe.sslRequest(), 1),
    feed('server', be.sslYes(), 2),
    feed('client', tls, 3),
    feed('server', Buffer.from('1603030059020000550303' + 'cd'.repeat(300), 'hex'), 4),
    feed('client', Buffer.from('1703030030' + '5a'.repeat(48), 'hex'), 5),
    feed('server', Buffer.from('1703030030' + '44'.repeat(48), 'hex'), 6),
  ]);
  run.session.close(10);
  assert.deepEqual(run.txns, []);
  assert.deepEqual(run.errors, []);
  assert.equal(run.session.bufferedBytes(), 0);
});

test('GSSENCRequest answered N, then SSLRequest answered N, then a clear session', () => {
  const run = apply(newRun(), [
    feed('client', fe.gssencRequest(), 1),
    feed('server', be.sslNo(), 2),
    feed('client', fe.sslRequest(), 3),
    feed('server', be.sslNo(), 4),
    feed('client', fe.startup({ user: 'bob' }), 5),
    feed('server', [be.authOk(), be.ready()], 6),
    feed('client', fe.query('select 1'), 7),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 8),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.request?.user, 'bob');
  assert.equal(run.txns[0]!.data.request?.database, 'bob', 'the database defaults to the user name');
  assert.deepEqual(run.errors, []);
});

test('GSSENCRequest answered G, a direct TLS connection, a CancelRequest: nothing reported', () => {
  const gss = apply(newRun(), [feed('client', fe.gssencRequest(), 1), feed('server', Buffer.from('G'), 2), feed('client', Buffer.from('6082020006092a864886f712010202', 'hex'), 3)]);
  const direct = apply(newRun(), [feed('client', Buffer.from('16030100f4010000f00303' + '11'.repeat(100), 'hex'), 1), feed('server', Buffer.from('160303007a020000760303' + '22'.repeat(100), 'hex'), 2)]);
  const cancel = apply(newRun(), [feed('client', fe.cancelRequest(1234, 5678), 1)]);
  for (const run of [gss, direct, cancel]) {
    run.session.close(10);
    assert.deepEqual(run.txns, []);
    assert.deepEqual(run.errors, []);
  }
});

test('a connection seen from the middle (no startup): typed messages from the first byte', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('select 1'), 1),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 2),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.request?.user, undefined);
  assert.deepEqual(run.errors, []);
});

test('an error outside any request (failed login) makes no transaction', () => {
  const run = apply(newRun(), [
    feed('client', fe.startup({ user: 'mallory', database: 'shop' }), 1),
    feed('server', be.error({ S: 'FATAL', V: 'FATAL', C: '28P01', M: 'password authentication failed for user "mallory"' }), 2),
  ]);
  run.session.close(3);
  assert.deepEqual(run.txns, []);
});

// ---- splits, gaps, garbage ------------------------------------------------------------------

const CONVERSATION: Op[] = [
  ...STARTUP,
  feed('client', fe.query("select * from items; insert into items values (4, 'fig;s', 2)"), 1000),
  feed('server', [...ITEMS_RESULT, be.commandComplete('INSERT 0 1'), be.ready()], 1100),
  feed('client', [fe.parse('s1', 'select $1::int'), fe.bind('', 's1', ['5']), fe.describe('P', ''), fe.execute(''), fe.sync()], 1200),
  feed('server', [be.parseComplete(), be.bindComplete(), be.rowDescription(['int4']), be.dataRow(['5']), be.commandComplete('SELECT 1'), be.ready()], 1300),
  feed('client', fe.query('copy items from stdin'), 1400),
  feed('server', be.copyIn(3), 1500),
  feed('client', [fe.copyData('9\tz\t1\n'), fe.copyDone()], 1600),
  feed('server', [be.commandComplete('COPY 1'), be.ready()], 1700),
  feed('client', fe.query('select * from nope'), 1800),
  feed('server', [pgError('42P01', 'relation "nope" does not exist'), be.ready()], 1900),
  feed('client', fe.terminate(), 2000),
];

test('split at every byte boundary: the same transactions as fed whole', () => {
  const whole = apply(newRun({ sendResponse: true }), CONVERSATION);
  assert.equal(whole.txns.length, 5);
  const expected = whole.txns.map(summary);
  const total = CONVERSATION.reduce((s, o) => s + (o.op === 'feed' ? o.data.length : 0), 0);
  for (let k = 1; k < total; k++) {
    // cut the conversation's k-th byte boundary (counting across all feeds)
    let seen = 0;
    const ops = splitOps(CONVERSATION, (data) => {
      const at = k - seen;
      seen += data.length;
      return at > 0 && at < data.length ? [at] : [];
    });
    const run = apply(newRun({ sendResponse: true }), ops);
    assert.deepEqual(run.txns.map(summary), expected, `split at byte ${k}`);
    assert.deepEqual(
      run.txns.map((t) => t.data.response?.rows),
      whole.txns.map((t) => t.data.response?.rows),
    );
  }
});

test('one byte at a time and random splits: the same transactions as fed whole', () => {
  const expected = apply(newRun(), CONVERSATION).txns.map(summary);
  const bytewise = apply(newRun(), splitOps(CONVERSATION, (d) => Array.from({ length: d.length }, (_, i) => i + 1)));
  assert.deepEqual(bytewise.txns.map(summary), expected);
  const rnd = prng(7);
  for (let r = 0; r < 200; r++) {
    const ops = splitOps(CONVERSATION, (d) => Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => Math.floor(rnd() * d.length)).sort((a, b) => a - b));
    assert.deepEqual(apply(newRun(), ops).txns.map(summary), expected, `random split ${r}`);
  }
});

test('a gap inside a DataRow keeps sync: rows counted, loss noted (only when lost)', () => {
  const big = 'x'.repeat(3000);
  const rows = [be.rowDescription(['id', 'payload']), be.dataRow(['1', big]), be.dataRow(['2', big]), be.commandComplete('SELECT 2')];
  const resp = Buffer.concat(rows);
  const firstRowEnd = rows[0]!.length + rows[1]!.length;
  for (const lost of [true, false]) {
    const run = apply(newRun({ sendResponse: true, maxRowLength: 20 }), [
      feed('client', fe.query('select id, payload from blobs'), 1),
      feed('server', resp.subarray(0, firstRowEnd + 100), 2),
      gap('server', 2500, 3, lost),
      feed('server', Buffer.concat([resp.subarray(firstRowEnd + 2600), be.ready()]), 4),
      feed('client', fe.query('select 1'), 5),
      feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 6),
    ]);
    assert.equal(run.txns.length, 2);
    const t = run.txns[0]!;
    assert.equal(t.data.response?.numRows, 2);
    assert.equal(t.data.response?.tag, 'SELECT 2');
    assert.equal(t.response?.bytes, resp.length);
    // values add up to at most maxRowLength bytes; the head of the second row was captured before the gap
    assert.deepEqual(t.data.response?.rows, [['1', 'x'.repeat(19)], ['2', 'x'.repeat(19)]]);
    assert.deepEqual(t.notes, lost ? ['Packet loss while capturing the response'] : []);
    assert.equal(run.txns[1]!.data.request?.query, 'select 1');
  }
});

test('a query longer than what was captured: the text is cut and says so', () => {
  const sql = `select '${'a'.repeat(10000)}' as long_literal`;
  const q = fe.query(sql);
  const run = apply(newRun(), [
    feed('client', q.subarray(0, 4096), 1),
    gap('client', q.length - 4096, 1, false),
    feed('server', [be.rowDescription(['long_literal']), be.dataRow(['a']), be.commandComplete('SELECT 1'), be.ready()], 2),
  ]);
  assert.equal(run.txns.length, 1);
  const t = run.txns[0]!;
  assert.equal(t.data.request?.truncated, true);
  assert.equal(t.data.request?.query, sql.slice(0, 4091));
  assert.equal(t.request?.bytes, q.length);
  assert.deepEqual(t.notes, []);
});

test('the end of a large answer in bytes not captured: the next request closes it', () => {
  const rows: Buffer[] = [be.rowDescription(['n'])];
  for (let i = 0; i < 500; i++) rows.push(be.dataRow([String(i)]));
  rows.push(be.commandComplete('SELECT 500'), be.ready());
  const resp = Buffer.concat(rows);
  // payload heads only: 1024 bytes of each 4096-byte write
  const ops: Op[] = [feed('client', fe.query('select n from generate_series(1, 500) n'), 1)];
  for (let at = 0, ts = 2; at < resp.length; at += 4096, ts++) {
    const end = Math.min(resp.length, at + 4096);
    ops.push(feed('server', resp.subarray(at, Math.min(end, at + 1024)), ts));
    if (end - at > 1024) ops.push(gap('server', end - at - 1024, ts, false));
  }
  ops.push(feed('client', fe.query('select 2'), 100));
  ops.push(feed('server', [be.rowDescription(['?column?']), be.dataRow(['2']), be.commandComplete('SELECT 1'), be.ready()], 101));
  const run = apply(newRun(), ops);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.tag]),
    [
      ['select n from generate_series(1, 500) n', undefined],
      ['select 2', 'SELECT 1'],
    ],
  );
  const big = run.txns[0]!.data.response!;
  assert.ok(big.numRows > 50 && big.numRows < 500, `rows seen: ${big.numRows}`);
  assert.equal(run.txns[0]!.response!.bytes, resp.length);
  assert.equal(run.session.pending(), 0);
});

test('a lost Query message: the server answer with no request is dropped, the next one pairs', () => {
  const q1 = fe.query('select 1');
  const run = apply(newRun(), [
    gap('client', q1.length, 1, true),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 2),
    feed('client', fe.query('select 2'), 3),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['2']), be.commandComplete('SELECT 1'), be.ready()], 4),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.request?.streamOffset]),
    [['select 2', q1.length]],
  );
});

test('garbage: reported once, resynchronised on the next message', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('select 1'), 1),
    feed('server', [Buffer.from('\x01\x02garbage here\xff'), be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 2),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.response?.tag, 'SELECT 1');
  assert.equal(run.errors.length, 1);
  assert.equal(run.errors[0]![1], false);
});

test('random bytes in random splits never throw and memory stays bounded', () => {
  const rnd = prng(42);
  for (let r = 0; r < 200; r++) {
    const run = newRun({ sendResponse: true });
    let maxBuffered = 0;
    const start = r % 3 === 0 ? STARTUP : [];
    apply(run, start);
    for (let i = 0; i < 40; i++) {
      const from = rnd() < 0.5 ? 'client' : 'server';
      const len = Math.floor(rnd() * 300);
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k++) b[k] = Math.floor(rnd() * 256);
      // sometimes plausible headers, to get past the framing
      if (len > 5 && rnd() < 0.3) {
        b[0] = 'QPBDESCTZdIE123nst'.charCodeAt(Math.floor(rnd() * 18));
        b.writeInt32BE(Math.floor(rnd() * 64) + 4, 1);
      }
      if (rnd() < 0.1) run.session.gap(from, Math.floor(rnd() * 10000), i, rnd() < 0.5);
      else run.session.feed(from, b, i);
      maxBuffered = Math.max(maxBuffered, run.session.bufferedBytes());
      if (rnd() < 0.05) run.session.expire(i);
    }
    run.session.close(1000);
    assert.ok(maxBuffered <= 2 * (64 * 1024 + 1100 + 8), `buffered ${maxBuffered}`);
    assert.equal(run.session.pending(), 0);
  }
});

test('a stream that never frames is given up on (fatal), bounded', () => {
  const run = newRun();
  const rnd = prng(3);
  const b = Buffer.alloc(64 * 1024);
  for (let i = 0; i < 100; i++) {
    for (let k = 0; k < b.length; k++) b[k] = 0x80 | Math.floor(rnd() * 128); // no valid type byte
    run.session.feed('server', b, i);
  }
  assert.ok(run.errors.some(([, fatal]) => fatal));
  assert.ok(run.errors.length <= 3, JSON.stringify(run.errors));
  assert.equal(run.session.bufferedBytes(), 0);
});

// ---- expiry, close, bounds --------------------------------------------------------------------

test('expire reports an unanswered request as unmatched; close reports what is left', () => {
  const run = apply(newRun(), [feed('client', fe.query('select pg_sleep(100)'), 1000), feed('client', fe.query('select 2'), 5000)]);
  assert.equal(run.session.pending(), 2);
  run.session.expire(2000);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.notes, t.response]),
    [['select pg_sleep(100)', ['Unmatched request'], undefined]],
  );
  assert.equal(run.session.pending(), 1);
  run.session.close(6000);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.notes]),
    [
      ['select pg_sleep(100)', ['Unmatched request']],
      ['select 2', ['Unmatched request']],
    ],
  );
  assert.equal(run.session.pending(), 0);
});

test('a late answer to an expired request is not reported twice and does not shift pairing', () => {
  const run = apply(newRun(), [
    feed('client', fe.query('select 1'), 1),
  ]);
  run.session.expire(10);
  apply(run, [
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['1']), be.commandComplete('SELECT 1'), be.ready()], 20),
    feed('client', fe.query('select 2'), 30),
    feed('server', [be.rowDescription(['?column?']), be.dataRow(['2']), be.commandComplete('SELECT 1'), be.ready()], 40),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.notes]),
    [
      ['select 1', ['Unmatched request']],
      ['select 2', []],
    ],
  );
});

test('thousands of pipelined requests without answers stay bounded', () => {
  const run = newRun();
  const q = fe.query('select 1');
  for (let i = 0; i < 3000; i++) run.session.feed('client', q, i);
  assert.ok(run.session.pending() <= 1024);
  assert.ok(run.txns.length >= 3000 - 1024);
  assert.ok(run.txns.every((t) => t.notes.includes('Unmatched request')));
  assert.ok(run.errors.some(([r]) => r.includes('waiting for their answer')));
});

test('a throwing sink does not break the session', () => {
  let calls = 0;
  const errors: string[] = [];
  const { createPgsqlSession } = require('../../../../src/protocols/pgsql/session') as typeof import('../../../../src/protocols/pgsql/session');
  const session = createPgsqlSession({
    onTransaction: () => {
      calls++;
      throw new Error('sink down');
    },
    onError: (r) => errors.push(r),
  });
  for (let i = 0; i < 2; i++) {
    session.feed('client', fe.query('select 1'), i);
    session.feed('server', Buffer.concat([be.commandComplete('SELECT 0'), be.ready()]), i);
  }
  assert.equal(calls, 2);
  assert.equal(errors.length, 2);
});

test('Flush: an answer to Execute+Flush is reported at once, without waiting for a Sync', () => {
  const run = apply(newRun(), [
    feed('client', [fe.parse('', 'select 1'), fe.bind('', ''), fe.execute(''), fe.flush()], 10),
    feed('server', [be.parseComplete(), be.bindComplete(), be.dataRow(['1']), be.commandComplete('SELECT 1')], 20),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.session.pending(), 0);
  apply(run, [feed('client', fe.sync(), 30), feed('server', be.ready(), 40)]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.session.pending(), 0);
});

test('packet loss inside a request is noted on that request', () => {
  const q = fe.query(`insert into t values ('${'v'.repeat(2000)}')`);
  const run = apply(newRun(), [
    feed('client', q.subarray(0, 100), 1),
    gap('client', q.length - 100, 2, true),
    feed('server', [be.commandComplete('INSERT 0 1'), be.ready()], 3),
  ]);
  assert.equal(run.txns.length, 1);
  assert.deepEqual(run.txns[0]!.notes, ['Packet loss while capturing the request']);
  assert.equal(run.txns[0]!.data.request?.truncated, true);
  assert.equal(run.txns[0]!.request?.endNs, 2);
});

test('FunctionCall (fast path) is a transaction answered by FunctionCallResponse', () => {
  const call = Buffer.concat([Buffer.from('F'), Buffer.from([0, 0, 0, 18, 0, 0, 3, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])]);
  const result = Buffer.concat([Buffer.from('V'), Buffer.from([0, 0, 0, 12, 0, 0, 0, 4, 0, 0, 0, 7])]);
  const run = apply(newRun(), [feed('client', call, 1), feed('server', [result, be.ready()], 2)]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.request?.protocol, 'function');
  assert.equal(run.txns[0]!.data.request?.query, 'FUNCTION CALL 952');
  assert.equal(run.txns[0]!.response?.bytes, result.length);
});

test('the client closing mid-group: a complete answer is still reported', () => {
  const run = apply(newRun(), [
    feed('client', [fe.parse('', 'select 1'), fe.bind('', ''), fe.execute('')], 1),
    { op: 'end', from: 'client', ts: 2 },
    feed('server', [be.parseComplete(), be.bindComplete(), be.dataRow(['1']), be.commandComplete('SELECT 1')], 3),
  ]);
  assert.equal(run.txns.length, 1);
  assert.equal(run.txns[0]!.data.response?.tag, 'SELECT 1');
  assert.deepEqual(run.txns[0]!.notes, []);
});
