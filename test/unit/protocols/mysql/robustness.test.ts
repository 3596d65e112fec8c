import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NOTE_RESPONSE_LOSS } from '../../../../src/protocols/mysql/session';
import { apply, c, gap, newRun, runOps, s, split, summary, timed, type Op } from './harness';
import {
  AUTH_RESPONSE,
  CLIENT_CAPS_8,
  CLIENT_CAPS_OLD,
  SCRAMBLE,
  SERVER_CAPS,
  STATUS_AUTOCOMMIT,
  STATUS_MORE_RESULTS,
  T,
  binaryRow,
  columnCount,
  columnDef,
  comInitDb,
  comQuery,
  comStmtClose,
  comStmtExecute,
  comStmtPrepare,
  eof,
  err,
  greeting,
  handshakeResponse,
  ok,
  okEof,
  packet,
  prepareOk,
  prng,
  resultSet,
  textRow,
} from './wire';

const ITEMS = [
  { schema: 'shop', table: 'items', name: 'id', type: T.LONG },
  { schema: 'shop', table: 'items', name: 'name' },
];

/** A conversation with a bit of everything, as one client and one server would send it. */
function conversation(deprecateEof: boolean): Op[] {
  const caps = deprecateEof ? CLIENT_CAPS_8 : CLIENT_CAPS_OLD;
  let seq = 1;
  const prep: Buffer[] = [prepareOk(seq++, 5, 2, 1), columnDef(seq++, '', '', '?', T.LONG)];
  if (!deprecateEof) prep.push(eof(seq++));
  prep.push(columnDef(seq++, 'shop', 'items', 'id', T.LONG), columnDef(seq++, 'shop', 'items', 'name'));
  if (!deprecateEof) prep.push(eof(seq++));
  let q = 1;
  const exec: Buffer[] = [columnCount(q++, 2), columnDef(q++, 'shop', 'items', 'id', T.LONG), columnDef(q++, 'shop', 'items', 'name')];
  if (!deprecateEof) exec.push(eof(q++));
  exec.push(binaryRow(q++, [{ type: T.LONG, value: 3 }, { type: T.VAR_STRING, value: 'fig' }]));
  exec.push(deprecateEof ? okEof(q++) : eof(q++));
  const more = STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS;
  return timed([
    s(greeting('10.11.6-MariaDB', SERVER_CAPS)),
    c(handshakeResponse(caps, 'app', 'shop')),
    s(packet(2, Buffer.concat([Buffer.from([0xfe]), Buffer.from('mysql_native_password\0'), SCRAMBLE, Buffer.from([0])]))),
    c(packet(3, AUTH_RESPONSE)),
    s(ok(4)),
    c(comQuery('SELECT id, name FROM items ORDER BY id')),
    s(resultSet(1, ITEMS, [['1', 'apple'], ['2', null], ['3', 'fig']], { deprecateEof })),
    c(comQuery("UPDATE items SET name = 'kiwi' WHERE id = 2")),
    s(ok(1, 1)),
    c(comQuery('SELECT * FROM nope')),
    s(err(1, 1146, '42S02', "Table 'shop.nope' doesn't exist")),
    c(comStmtPrepare('SELECT id, name FROM items WHERE id = ?')),
    s(prep),
    c(comStmtExecute(5, [{ type: T.LONG, value: 3 }])),
    s(exec),
    c(comStmtClose(5)),
    c(comInitDb('other')),
    s(ok(1)),
    c(comQuery('CALL p()')),
    s([resultSet(1, [{ schema: '', table: '', name: 'x' }], [['1']], { deprecateEof, status: more }), ok(deprecateEof ? 5 : 6)]),
  ]);
}

function results(ops: Op[], options = {}): unknown[] {
  const run = runOps(ops, options);
  run.session.close(1e9);
  assert.deepEqual(run.errors, []);
  return run.txns.map(summary);
}

test('every split point of every message gives the same transactions', () => {
  for (const deprecateEof of [false, true]) {
    const ops = conversation(deprecateEof);
    const whole = results(ops, { sendResponse: true });
    assert.equal(whole.length, 7);
    ops.forEach((o, i) => {
      if (o.op !== 'feed') return;
      for (let p = 1; p < o.data.length; p++) {
        const cut: Op[] = [...ops.slice(0, i), { ...o, data: o.data.subarray(0, p) }, { ...o, data: o.data.subarray(p) }, ...ops.slice(i + 1)];
        assert.deepEqual(results(cut, { sendResponse: true }), whole, `op ${i} cut at ${p}`);
      }
    });
    // one byte at a time
    assert.deepEqual(results(split(ops, (d) => Array.from({ length: d.length }, (_, k) => k)), { sendResponse: true }), whole);
  }
});

test('random splits and both directions merged in one feed each never change the result', () => {
  const rnd = prng(7);
  const ops = conversation(true);
  const whole = results(ops);
  for (let round = 0; round < 200; round++) {
    const cut = split(ops, (d) => Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => Math.floor(rnd() * d.length)));
    assert.deepEqual(results(cut), whole, `round ${round}`);
  }
});

function bigResult(rows: number, deprecateEof = false): { wire: Buffer; rowOffsets: number[] } {
  const parts: Buffer[] = [columnCount(1, 2), columnDef(2, 'shop', 'log', 'id', T.LONG), columnDef(3, 'shop', 'log', 'line')];
  let seq = 4;
  if (!deprecateEof) parts.push(eof(seq++));
  const rowOffsets: number[] = [];
  let off = parts.reduce((n, b) => n + b.length, 0);
  for (let i = 0; i < rows; i++) {
    const r = textRow(seq++, [String(i), `line ${i} `.padEnd(90 + (i % 7) * 13, '.')]);
    rowOffsets.push(off);
    off += r.length;
    parts.push(r);
  }
  parts.push(deprecateEof ? okEof(seq++) : eof(seq++));
  return { wire: Buffer.concat(parts), rowOffsets };
}

test('a lost segment inside one row: the framing holds, every row is counted, the note is there', () => {
  const { wire, rowOffsets } = bigResult(40);
  const at = rowOffsets[10] + 20;
  const run = runOps([
    c(comQuery('SELECT id, line FROM log'), 1),
    s(wire.subarray(0, at), 2),
    gap('server', 30, 3),
    s(wire.subarray(at + 30), 4),
    c(comQuery('SELECT 1'), 5),
    s(ok(1), 6),
  ]);
  assert.equal(run.txns.length, 2);
  const r = run.txns[0];
  assert.equal(r.data.response?.numRows, 40);
  assert.deepEqual(r.notes, [NOTE_RESPONSE_LOSS]);
  assert.equal(r.response?.bytes, wire.length);
  assert.equal(r.response?.endNs, 4);
  assert.equal(run.txns[1].data.request?.query, 'SELECT 1');
  assert.deepEqual(run.txns[1].notes, []);
});

test('a lost segment over several rows: the sequence-id chain finds the rows again, the response ends at its EOF', () => {
  for (const deprecateEof of [false, true]) {
    const { wire, rowOffsets } = bigResult(300, deprecateEof);
    const from = rowOffsets[100] + 37;
    const to = rowOffsets[140] + 11;
    const run = runOps([
      c(comQuery('SELECT id, line FROM log'), 1),
      s(wire.subarray(0, from), 2),
      gap('server', to - from, 3),
      // segments of ~1400 bytes, as TCP would deliver them
      ...split([s(wire.subarray(to), 4)], (d) => Array.from({ length: Math.ceil(d.length / 1400) }, (_, k) => k * 1400)),
      c(comQuery('SELECT 2'), 5),
      s(ok(1), 6),
    ]);
    assert.equal(run.txns.length, 2, `deprecateEof=${deprecateEof}`);
    const r = run.txns[0];
    assert.deepEqual(r.notes, [NOTE_RESPONSE_LOSS]);
    assert.equal(r.data.response?.kind, 'resultset');
    // rows 0..99 before, 141.. after (what the scan skips until the chain is found is not counted)
    assert.ok(r.data.response!.numRows >= 255 && r.data.response!.numRows <= 260, `rows ${r.data.response?.numRows}`);
    assert.equal(r.response?.bytes, wire.length);
    assert.equal(r.response?.endNs, 4);
    assert.equal(run.txns[1].data.request?.query, 'SELECT 2');
    assert.equal(run.txns[1].response?.startNs, 6);
    assert.equal(run.session.bufferedBytes(), 0);
  }
});

test('max_payload cuts (head and tail of each write kept) over many rows: no loss note, the response still ends', () => {
  const { wire } = bigResult(1000);
  const ops: Op[] = [c(comQuery('SELECT id, line FROM log'), 1)];
  // the server writes 16 KiB at a time; the capture keeps 4096 bytes of head and 1024 of tail
  for (let w = 0; w < wire.length; w += 16384) {
    const chunk = wire.subarray(w, w + 16384);
    if (chunk.length <= 5120) {
      ops.push(s(chunk, 2));
      continue;
    }
    ops.push(s(chunk.subarray(0, 4096), 2), gap('server', chunk.length - 5120, 2, false), s(chunk.subarray(chunk.length - 1024), 2));
  }
  ops.push(c(comQuery('SELECT 3'), 3), s(ok(1), 4));
  const run = runOps(ops);
  assert.equal(run.txns.length, 2);
  const r = run.txns[0];
  assert.deepEqual(r.notes, []);
  assert.equal(r.response?.bytes, wire.length);
  assert.equal(r.data.response?.incomplete, undefined);
  assert.ok(r.data.response!.numRows > 200 && r.data.response!.numRows < 1000, `rows ${r.data.response?.numRows}`);
  assert.equal(run.txns[1].data.request?.query, 'SELECT 3');
  assert.deepEqual(run.txns[1].notes, []);
});

test('the end of a response is lost: the next command closes it, marked incomplete', () => {
  const { wire, rowOffsets } = bigResult(50);
  const run = runOps([
    c(comQuery('SELECT id, line FROM log'), 1),
    s(wire.subarray(0, rowOffsets[45] + 3), 2),
    gap('server', wire.length - rowOffsets[45] - 3, 3),
    c(comQuery('SELECT 4'), 4),
    s(ok(1, 0, 0), 5),
    c(comQuery('SELECT 5'), 6),
    s(resultSet(1, [{ schema: '', table: '', name: '5' }], [['5']]), 7),
  ]);
  assert.equal(run.txns.length, 3);
  assert.equal(run.txns[0].data.response?.incomplete, true);
  assert.deepEqual(run.txns[0].notes, [NOTE_RESPONSE_LOSS]);
  assert.equal(run.txns[0].response?.bytes, wire.length);
  assert.equal(run.txns[1].data.response?.kind, 'ok');
  assert.equal(run.txns[1].response?.startNs, 5);
  assert.equal(run.txns[2].data.response?.numRows, 1);
});

test('lost client bytes over whole commands: the next command at the start of a write is found', () => {
  const hs = conversation(false).slice(0, 5);
  const hsClient = hs.reduce((n, o) => n + (o.op === 'feed' && o.from === 'client' ? o.data.length : 0), 0);
  const q1 = comQuery('SELECT a FROM t1');
  const q2 = comQuery('SELECT b FROM t2');
  const run = runOps([
    ...hs,
    c(q1.subarray(0, 10), 11),
    gap('client', q1.length - 10 + q2.length, 12),
    s(resultSet(1, [{ schema: 'db', table: 't1', name: 'a' }], [['1']]), 13),
    s(err(1, 1054, '42S22', "Unknown column 'b' in 'field list'"), 14),
    c(comQuery('SELECT c FROM t3'), 15),
    s(ok(1), 16),
  ]);
  assert.deepEqual(
    run.txns.map((t) => [t.data.request?.query, t.data.response?.kind, t.notes]),
    [
      // what there is of the first command, with its answer
      ['SELEC', 'resultset', ['Packet loss while capturing the request']],
      // the answer to the command that was lost: an error, reported without its request
      [undefined, 'error', ['Unmatched response']],
      ['SELECT c FROM t3', 'ok', []],
    ],
  );
  assert.equal(run.txns[0].data.request?.truncated, true);
  assert.equal(run.txns[0].request?.bytes, q1.length + q2.length);
  assert.equal(run.txns[2].request?.streamOffset, hsClient + q1.length + q2.length);
});

test('garbage and random bytes never throw; memory stays bounded', () => {
  const rnd = prng(1234);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  for (let round = 0; round < 300; round++) {
    const run = newRun({ sendResponse: rnd() < 0.5 });
    // sometimes a real start, so that the command phase is reached
    if (round % 3 === 0) apply(run, conversation(round % 2 === 0).slice(0, 5));
    for (let i = 0; i < 60; i++) {
      const from = rnd() < 0.5 ? 'client' : 'server';
      const r = rnd();
      if (r < 0.1) run.session.gap(from, Math.floor(rnd() * 100000), i, rnd() < 0.5);
      else if (r < 0.3) {
        // plausible packets with random payloads
        run.session.feed(from, packet(Math.floor(rnd() * 4), bytes(Math.floor(rnd() * 64))), i);
      } else run.session.feed(from, bytes(1 + Math.floor(rnd() * 3000)), i);
      assert.ok(run.session.bufferedBytes() <= 256 * 1024, `round ${round}: buffered ${run.session.bufferedBytes()}`);
      if (rnd() < 0.05) run.session.expire(i);
    }
    run.session.close(100);
    assert.equal(run.session.pending(), 0);
    assert.ok(run.errors.every(([, fatal]) => !fatal), `round ${round}: ${JSON.stringify(run.errors)}`);
  }
});

test('a conversation with random bytes flipped never throws', () => {
  const rnd = prng(99);
  const ops = conversation(false);
  for (let round = 0; round < 300; round++) {
    const mutated = ops.map((o) => {
      if (o.op !== 'feed' || rnd() > 0.3) return o;
      const d = Buffer.from(o.data);
      d[Math.floor(rnd() * d.length)] = Math.floor(rnd() * 256);
      return { ...o, data: d };
    });
    const run = runOps(mutated, { sendResponse: true });
    run.session.close(1e9);
    assert.equal(run.session.pending(), 0);
    assert.ok(run.errors.every(([, fatal]) => !fatal));
  }
});
