import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';

import { createPgsqlModule, detectPgsql } from '../../../../src/protocols/pgsql';
import type { PgsqlData, PgsqlOptions } from '../../../../src/protocols/pgsql/types';
import type { DocumentFields, ProtocolTransaction } from '../../../../src/protocols/types';
import { apply, be, fe, feed, newRun, PCAP_DIR, pcapOps, pgError, type Op } from './helpers';

const SERVER = { ip: '127.0.0.1', port: 5432 };

/** Every transaction of a pcap's pgsql connections, and their document fields. */
function replay(file: string, options: PgsqlOptions = {}): Array<{ txn: ProtocolTransaction<PgsqlData>; doc: DocumentFields }> {
  const module = createPgsqlModule(options);
  const out: Array<{ txn: ProtocolTransaction<PgsqlData>; doc: DocumentFields }> = [];
  const errors: string[] = [];
  for (const ops of pcapOps(file, 5432)) {
    const session = module.createSession({ onTransaction: (txn) => out.push({ txn, doc: module.documentFields([txn], SERVER) }), onError: (r) => errors.push(r) });
    for (const o of ops) if (o.op === 'feed') session.feed(o.from, o.data, o.ts);
    session.close(0);
  }
  assert.deepEqual(errors, [], `${file}: no parse errors`);
  return out;
}

function docOf(ops: Op[], options: PgsqlOptions = {}): DocumentFields[] {
  const module = createPgsqlModule(options);
  const run = apply(newRun(options), ops);
  return run.txns.map((t) => module.documentFields([t], SERVER));
}

test("Packetbeat's pcaps are where the tests say", () => {
  // fail loudly, not skip: the acceptance suite must run in CI
  assert.ok(fs.existsSync(`${PCAP_DIR}/expectations.json`), `missing ${PCAP_DIR}`);
});

test('pgsql_insert.pcap: INSERT, source.bytes 63, destination.bytes 16 (ReadyForQuery not counted)', () => {
  const out = replay('pgsql_insert.pcap');
  assert.equal(out.length, 1);
  const { doc } = out[0]!;
  assert.equal(doc.root.method, 'INSERT');
  assert.equal(doc.requestBytes, 63);
  assert.equal(doc.responseBytes, 16);
  assert.equal(doc.status, 'OK');
  assert.deepEqual(doc.fields.pgsql, { num_rows: 0, num_fields: 0, rows_affected: 1 });
});

test('pgsql_request_response.pcap: SELECT, trailing ";" removed, CSV response, destination.bytes 202', () => {
  const out = replay('pgsql_request_response.pcap', { sendResponse: true });
  assert.equal(out.length, 1);
  const { doc } = out[0]!;
  assert.equal(doc.root.method, 'SELECT');
  assert.equal(doc.root.query, 'select * from test');
  assert.equal(doc.root.response, 'a,b,c\nmea,meb,mec\nmea1,meb1,mec1\nmea2,meb2,mec2\nmea3,meb3,mec3\n');
  assert.equal(doc.responseBytes, 202);
  assert.equal(doc.requestBytes, 25);
  assert.equal((doc.fields.pgsql as Record<string, unknown>).num_rows, 4);
  assert.equal((doc.fields.pgsql as Record<string, unknown>).num_fields, 3);
});

test('pgsql_long_result.pcap: max_rows / max_row_length shape the CSV; num_rows counts every row', () => {
  const lines = (options: PgsqlOptions) => {
    const out = replay('pgsql_long_result.pcap', { sendResponse: true, ...options });
    assert.equal(out.length, 1);
    assert.equal((out[0]!.doc.fields.pgsql as Record<string, unknown>).num_rows, 15);
    return (out[0]!.doc.root.response as string).trim().split('\n');
  };
  const dflt = lines({});
  assert.equal(dflt.length, 11);
  assert.ok(dflt.slice(4).every((l) => l.length === 237), dflt.slice(4).map((l) => l.length).join());
  const cut = lines({ maxRowLength: 79 });
  assert.equal(cut.length, 11);
  assert.ok(cut.slice(4).every((l) => l.length === 83), cut.slice(4).map((l) => l.length).join());
  assert.equal(lines({ maxRowLength: 79, maxRows: 5 }).length, 6);
  assert.equal(lines({ maxRows: 2000 }).length, 16);
});

test('pgsql_long_result.pcap: request/response only with send_request/send_response', () => {
  const keys = (options: PgsqlOptions) => {
    const out = replay('pgsql_long_result.pcap', options);
    assert.equal(out.length, 1);
    const root = out[0]!.doc.root;
    return [typeof root.request === 'string' && root.request.length > 0, typeof root.response === 'string' && root.response.length > 0, 'request' in root, 'response' in root];
  };
  assert.deepEqual(keys({}), [false, false, false, false]);
  assert.deepEqual(keys({ sendRequest: false, sendResponse: false }), [false, false, false, false]);
  assert.deepEqual(keys({ sendRequest: true }), [true, false, true, false]);
  assert.deepEqual(keys({ sendResponse: true }), [false, true, false, true]);
  assert.deepEqual(keys({ sendRequest: true, sendResponse: true }), [true, true, true, true]);
});

test('pgsql_rt.pcap: SSLRequest/N, startup and md5 auth make nothing; the query takes 38.8 ms', () => {
  const out = replay('pgsql_rt.pcap');
  assert.equal(out.length, 1);
  const { txn, doc } = out[0]!;
  assert.equal(doc.root.method, 'SELECT');
  assert.equal(txn.response!.endNs - txn.request!.startNs, 38_800_000);
  assert.deepEqual(doc.fields.db, { system: 'postgresql', statement: 'select * from test', name: 'psql', user: 'psql' });
  assert.deepEqual(doc.fields.user, { name: 'psql' });
});

test('http_10_connection_close.pcap: the SSL-negotiated PostgreSQL session makes no transaction', () => {
  const conns = pcapOps('http_10_connection_close.pcap', 5432);
  assert.equal(conns.length, 1, 'the capture holds one connection to 5432');
  assert.equal(replay('http_10_connection_close.pcap').length, 0);
});

test('document fields: method, query, db.*, user, pgsql.*, status', () => {
  const start: Op[] = [feed('client', fe.startup({ user: 'alice', database: 'shop' }), 1), feed('server', [be.authOk(), be.ready()], 2)];
  const [ok, failed] = docOf([
    ...start,
    feed('client', fe.query('  UPDATE items SET price = 2 WHERE id = 1 ;\n'), 3),
    feed('server', [be.commandComplete('UPDATE 316'), be.ready()], 4),
    feed('client', fe.query('select * from missing_table'), 5),
    feed('server', [pgError('42P01', 'relation "missing_table" does not exist'), be.ready('I')], 6),
  ]);
  assert.deepEqual(ok, {
    status: 'OK',
    outcome: 'success',
    matched: true,
    requestBytes: fe.query('  UPDATE items SET price = 2 WHERE id = 1 ;\n').length,
    responseBytes: be.commandComplete('UPDATE 316').length,
    root: { method: 'UPDATE', query: 'UPDATE items SET price = 2 WHERE id = 1' },
    fields: {
      pgsql: { num_rows: 0, num_fields: 0, rows_affected: 316 },
      db: { system: 'postgresql', statement: 'UPDATE items SET price = 2 WHERE id = 1', name: 'shop', user: 'alice' },
      user: { name: 'alice' },
      related: { user: ['alice'] },
    },
  });
  assert.equal(failed!.status, 'Error');
  assert.equal(failed!.outcome, 'failure');
  assert.deepEqual(failed!.fields.pgsql, {
    num_rows: 0,
    num_fields: 0,
    error_code: '42P01',
    error_message: 'relation "missing_table" does not exist',
    error_severity: 'ERROR',
  });
});

test('an unmatched request is an Error with unknown outcome', () => {
  const module = createPgsqlModule();
  const run = apply(newRun(), [feed('client', fe.query('select 1'), 1)]);
  run.session.close(2);
  const doc = module.documentFields(run.txns, SERVER);
  assert.equal(doc.status, 'Error');
  assert.equal(doc.outcome, 'unknown');
  assert.equal(doc.matched, false);
  assert.equal(doc.responseBytes, 0);
  assert.equal(doc.root.query, 'select 1');
});

test('views: each message from the first view that has it', () => {
  const module = createPgsqlModule();
  const run = apply(newRun(), [feed('client', fe.query('select 1'), 1), feed('server', [be.commandComplete('SELECT 0'), be.ready()], 2)]);
  const full = run.txns[0]!;
  const requestOnly: ProtocolTransaction<PgsqlData> = { request: full.request, notes: ['Unmatched request'], data: { request: full.data.request } };
  const doc = module.documentFields([requestOnly, full], SERVER);
  assert.equal(doc.matched, true);
  assert.equal(doc.status, 'OK');
  assert.equal(doc.responseBytes, full.response!.bytes);
});

test('response text: CSV quoting like Go encoding/csv, newlines escaped; tag or error without rows', () => {
  const [select, insert, failed] = docOf(
    [
      feed('client', fe.query('select * from t'), 1),
      feed('server', [be.rowDescription(['a', 'b,c', 'd']), be.dataRow(['x"y', ' lead', 'multi\nline']), be.dataRow([null, '', '\\.']), be.commandComplete('SELECT 2'), be.ready()], 2),
      feed('client', fe.query('insert into t values (1)'), 3),
      feed('server', [be.commandComplete('INSERT 0 1'), be.ready()], 4),
      feed('client', fe.query('select 1/0'), 5),
      feed('server', [pgError('22012', 'division by zero'), be.ready()], 6),
    ],
    { sendResponse: true, sendRequest: true },
  );
  assert.equal(select!.root.response, 'a,"b,c",d\n"x""y"," lead",multi\\nline\n,,"\\."\n');
  assert.equal(select!.root.request, 'select * from t');
  assert.equal(insert!.root.response, 'INSERT 0 1');
  assert.equal(failed!.root.response, 'ERROR 22012: division by zero');
});

test('maxRows 0 keeps only the header line; num_rows still counts', () => {
  const [doc] = docOf(
    [feed('client', fe.query('select a from t'), 1), feed('server', [be.rowDescription(['a']), be.dataRow(['1']), be.dataRow(['2']), be.commandComplete('SELECT 2'), be.ready()], 2)],
    { sendResponse: true, maxRows: 0 },
  );
  assert.equal(doc!.root.response, 'a\n');
  assert.equal((doc!.fields.pgsql as Record<string, unknown>).num_rows, 2);
});

// ---- detect ---------------------------------------------------------------------------

test('detect: startup packets from the client say yes', () => {
  const none = Buffer.alloc(0);
  const startup = fe.startup({ user: 'postgres', database: 'postgres', application_name: 'psql' });
  assert.equal(detectPgsql(startup, none), 'yes');
  assert.equal(detectPgsql(fe.startup({ user: 'postgres' }, 196610), none), 'yes', 'protocol 3.2');
  assert.equal(detectPgsql(fe.sslRequest(), none), 'yes');
  assert.equal(detectPgsql(fe.sslRequest(), Buffer.from('N')), 'yes');
  assert.equal(detectPgsql(fe.gssencRequest(), none), 'yes');
  assert.equal(detectPgsql(fe.cancelRequest(1, 2), none), 'yes');
});

test('detect: partial startup packets need more; other protocols say no', () => {
  const none = Buffer.alloc(0);
  const startup = fe.startup({ user: 'postgres', database: 'postgres' });
  assert.equal(detectPgsql(none, none), 'need-more');
  assert.equal(detectPgsql(startup.subarray(0, 3), none), 'need-more');
  assert.equal(detectPgsql(startup.subarray(0, 12), none), 'need-more');
  assert.equal(detectPgsql(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), none), 'no');
  assert.equal(detectPgsql(Buffer.from('*1\r\n$4\r\nPING\r\n'), none), 'no');
  assert.equal(detectPgsql(none, Buffer.from('4a0000000a382e302e3333', 'hex')), 'no', 'a server that speaks first (MySQL)');
  assert.equal(detectPgsql(Buffer.from('16030100f4010000f0', 'hex'), none), 'no', 'TLS');
  assert.equal(detectPgsql(fe.query('select 1'), none), 'no', 'typed messages are not a connection start');
  // wrong code, wrong lengths, no user parameter
  const bad = Buffer.from(startup);
  bad.writeInt32BE(196608 + 7, 4);
  assert.equal(detectPgsql(bad, none), 'no');
  const noUser = fe.startup({ database: 'postgres' });
  assert.equal(detectPgsql(noUser, none), 'no');
  const ssl9 = Buffer.concat([fe.sslRequest(), Buffer.alloc(1)]);
  ssl9.writeInt32BE(9, 0);
  assert.equal(detectPgsql(ssl9, none), 'no');
  const huge = Buffer.from(startup);
  huge.writeInt32BE(50_000, 0);
  assert.equal(detectPgsql(huge, none), 'no');
});
