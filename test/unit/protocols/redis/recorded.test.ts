/**
 * Real traffic recorded by test/fixtures/record-redis.ts (redis-server from
 * Debian, redis-cli, raw sockets, ioredis), replayed through the session chunk
 * by chunk with each chunk's recorded time. Chunks the recorder cut like the
 * capture does (head, gap, tail) are replayed as such: feed, gap(lost=false),
 * feed, all at the chunk's time.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { StreamChunk, StreamFixture } from '../../../helpers/relay';
import { bulk, FIXTURE_DIR, harness, prng, resp, type Txn } from './helpers';

interface RedisChunk extends StreamChunk {
  gap?: number;
  tail?: string;
}

function load(name: string): StreamFixture {
  const file = path.join(FIXTURE_DIR, `${name}.json`);
  assert.ok(fs.existsSync(file), `${file} is missing: run node dist/test/fixtures/record-redis.js`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as StreamFixture;
}

/** Replays one connection; `split` may cut each fed piece further. */
function replay(conn: RedisChunk[], split?: (len: number) => number[]): Txn[] {
  const h = harness();
  const feed = (from: 'client' | 'server', data: Buffer, t: number) => {
    let at = 0;
    for (const cut of [...(split ? split(data.length) : []), data.length]) {
      if (cut > at) h.session.feed(from, data.subarray(at, cut), t);
      at = Math.max(at, cut);
    }
  };
  let last = 0;
  for (const c of conn) {
    feed(c.from, Buffer.from(c.data, 'base64'), c.t);
    if (c.gap) {
      h.session.gap(c.from, c.gap, c.t, false);
      feed(c.from, Buffer.from(c.tail ?? '', 'base64'), c.t);
    }
    last = c.t;
  }
  h.session.close(last + 1);
  assert.deepEqual(h.errors, []);
  return h.txns;
}

type Row = [method: unknown, query: unknown, value: unknown, requestBytes: unknown, responseBytes: unknown];

function rows(txns: Txn[]): Row[] {
  return txns.map((t) => {
    const r = t.data.response;
    return [t.data.request?.method, t.data.request?.query, r ? (r.isError ? { error: r.value } : r.value) : undefined, t.request?.bytes, t.response?.bytes];
  });
}

const len = (s: string) => Buffer.byteLength(s);

/** Bytes each side sent on a connection (heads, gaps and tails). */
function sent(conn: RedisChunk[], from: 'client' | 'server'): number {
  return conn.filter((c) => c.from === from).reduce((n, c) => n + Buffer.from(c.data, 'base64').length + (c.gap ?? 0) + Buffer.from(c.tail ?? '', 'base64').length, 0);
}

/**
 * Requests tile the client's stream (exactly, unless the client sent bytes
 * that are no request, like blank lines); replies sit in order in the server's
 * stream, without overlapping (pushes lie between them).
 */
function assertTiles(conn: RedisChunk[], txns: Txn[], exact = true): void {
  let req = 0;
  let res = 0;
  for (const t of txns) {
    if (t.request) {
      if (exact) assert.equal(t.request.streamOffset, req);
      else assert.ok(t.request.streamOffset >= req);
      req = t.request.streamOffset + t.request.bytes;
    }
    if (t.response) {
      assert.ok(t.response.streamOffset >= res);
      res = t.response.streamOffset + t.response.bytes;
    }
  }
  if (exact) assert.equal(req, sent(conn, 'client'));
  assert.ok(res <= sent(conn, 'server'));
}

describe('redis recorded traffic', () => {
  it('redis-cli one-shot commands', () => {
    const f = load('cli');
    assert.equal(f.connections.length, 8);
    const all = f.connections.map((c) => {
      const txns = replay(c);
      assert.equal(txns.length, 1);
      assertTiles(c, txns);
      // timing comes from the chunks carrying the first and last bytes
      assert.equal(txns[0]!.request!.startNs, c[0]!.t);
      assert.equal(txns[0]!.response!.endNs, c[c.length - 1]!.t);
      return rows(txns)[0]!;
    });
    const wrongType = '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n';
    assert.deepEqual(all, [
      ['SET', 'set key3 me', 'OK', resp('set', 'key3', 'me').length, 5],
      ['GET', 'get key3', 'me', resp('get', 'key3').length, 8],
      ['LPUSH', 'lpush list1 a b c', '3', resp('lpush', 'list1', 'a', 'b', 'c').length, 4],
      ['LLEN', 'llen key3', { error: wrongType.slice(1, -2) }, resp('llen', 'key3').length, len(wrongType)],
      ['INCR', 'incr list1', { error: wrongType.slice(1, -2) }, resp('incr', 'list1').length, len(wrongType)],
      ['CONFIG GET', 'config get maxmemory', '[maxmemory, 0]', resp('config', 'get', 'maxmemory').length, 26],
      ['LRANGE', 'lrange list1 0 -1', '[c, b, a]', resp('lrange', 'list1', '0', '-1').length, 25],
      ['GET', 'get nosuchkey', 'nil', resp('get', 'nosuchkey').length, 5],
    ]);
  });

  it('inline commands over a raw socket', () => {
    const conn = load('inline').connections[0]!;
    const txns = replay(conn);
    assertTiles(conn, txns, false);
    const unknown = "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' \r\n";
    assert.deepEqual(rows(txns), [
      ['PING', 'PING', 'PONG', 6, 7],
      ['SET', 'SET inl hello world', 'OK', len('SET inl "hello world"\r\n'), 5],
      ['GET', 'GET inl', 'hello world', 9, len(bulk('hello world').toString())],
      ['NOSUCHCMD', 'NOSUCHCMD a b', { error: unknown.slice(1, -2) }, 15, len(unknown)],
      ['QUIT', 'QUIT', 'OK', 6, 5],
    ]);
    assert.ok(txns.every((t) => t.data.request?.inline));
  });

  it('redis-cli --pipe: a pipelined batch', () => {
    const conn = load('pipe').connections[0]!;
    const txns = replay(conn);
    assert.equal(txns.length, 51);
    assertTiles(conn, txns, false); // redis-cli sends a blank line before its ECHO marker
    assert.equal(txns[50]!.request!.streamOffset, txns[49]!.request!.streamOffset + txns[49]!.request!.bytes + 2);
    const expected: Row[] = [];
    for (let i = 0; i < 40; i++) expected.push(['SET', `SET pipe:${i} value-${i}`, 'OK', resp('SET', `pipe:${i}`, `value-${i}`).length, 5]);
    for (let i = 1; i <= 10; i++) expected.push(['INCR', 'INCR pipe:counter', String(i), resp('INCR', 'pipe:counter').length, len(`:${i}\r\n`)]);
    assert.deepEqual(rows(txns).slice(0, 50), expected);
    // redis-cli's end marker: ECHO of 20 random bytes
    assert.deepEqual([txns[50]!.data.request?.method, txns[50]!.request?.bytes, txns[50]!.response?.bytes], ['ECHO', 41, 27]);
    assert.equal(txns[50]!.data.response?.value, txns[50]!.data.request?.resource);
    assert.ok(txns.every((t) => t.notes.length === 0));
  });

  it('redis-cli -3: RESP3 replies, and a 170 KB COMMAND DOCS map read in cut chunks', () => {
    const conn = load('resp3').connections[0]!;
    const txns = replay(conn);
    assertTiles(conn, txns);
    const r = rows(txns);
    assert.equal(r.length, 10);
    assert.deepEqual(r[0]!.slice(0, 2), ['HELLO', 'HELLO 3']);
    assert.match(String(r[0]![2]), /^\{server: redis, version: [\d.]+, proto: 3, id: \d+, mode: standalone, role: master, modules: \[\]\}$/);
    // COMMAND DOCS: the reply spans several reads, each copied as head + tail: its size is still exact
    assert.deepEqual(r[1]!.slice(0, 2), ['COMMAND DOCS', 'COMMAND DOCS']);
    const docs = txns[1]!;
    const serverBytes = sent(conn, 'server');
    const others = txns.filter((t) => t !== docs).reduce((n, t) => n + (t.response?.bytes ?? 0), 0);
    assert.equal(docs.response!.bytes, serverBytes - others);
    assert.ok(docs.response!.bytes > 100_000);
    // a map of command name → map of doc fields (the order is the server's dict order)
    assert.match(String(r[1]![2]), /^\{[a-z_|-]+: \{summary: [^{}]+, since: [\d.]+, group: /);
    assert.ok(docs.data.response?.truncated);
    assert.deepEqual(r.slice(2, 6), [
      ['HSET', 'hset h3 f1 v1 f2 v2', '2', resp('hset', 'h3', 'f1', 'v1', 'f2', 'v2').length, 4],
      ['HGETALL', 'hgetall h3', '{f1: v1, f2: v2}', resp('hgetall', 'h3').length, 36],
      ['SADD', 'sadd s3 x y', '2', resp('sadd', 's3', 'x', 'y').length, 4],
      ['SMEMBERS', 'smembers s3', r[5]![2], resp('smembers', 's3').length, 18],
    ]);
    assert.match(String(r[5]![2]), /^\[(x, y|y, x)\]$/);
    assert.equal(txns[5]!.data.response?.type, '~');
    assert.deepEqual(r.slice(6), [
      ['ZADD', 'zadd z3 1.5 m', '1', resp('zadd', 'z3', '1.5', 'm').length, 4],
      ['ZSCORE', 'zscore z3 m', '1.5', resp('zscore', 'z3', 'm').length, 6],
      ['GET', 'get nosuchkey3', 'nil', resp('get', 'nosuchkey3').length, 3],
      ['HGET', 'hget h3', { error: "ERR wrong number of arguments for 'hget' command" }, resp('hget', 'h3').length, 51],
    ]);
  });

  it('MULTI/EXEC and DISCARD from redis-cli', () => {
    const conn = load('multi').connections[0]!;
    const txns = replay(conn);
    assertTiles(conn, txns);
    assert.deepEqual(rows(txns).slice(1), [
      ['MULTI', 'multi', 'OK', 15, 5],
      ['SET', 'set m 1', 'QUEUED', 27, 9],
      ['INCR', 'incr m', 'QUEUED', 21, 9],
      ['EXEC', 'exec', '[OK, 2]', 14, 13],
      ['MULTI', 'multi', 'OK', 15, 5],
      ['INCR', 'incr m', 'QUEUED', 21, 9],
      ['DISCARD', 'discard', 'OK', 17, 5],
    ]);
    assert.equal(txns[0]!.data.request?.method, 'COMMAND DOCS');
    assert.match(String(txns[0]!.data.response?.value), /^\[[a-z_|-]+, \[summary, [^[\]]+, since, [\d.]+, group, /);
  });

  it('pub/sub in RESP2 and RESP3', () => {
    const f = load('pubsub');
    const byFirst = new Map(f.connections.map((c) => [Buffer.from(c[0]!.data, 'base64').toString('latin1'), c]));
    const sub2 = byFirst.get(resp('SUBSCRIBE', 'ch1', 'ch2').toString('latin1'))!;
    const t2 = replay(sub2);
    assertTiles(sub2, t2);
    assert.deepEqual(
      t2.map((t) => [t.data.request?.method, t.data.response?.value, t.data.response?.parts, t.data.pushes]),
      [
        ['SUBSCRIBE', '[subscribe, ch1, 1], [subscribe, ch2, 2]', 2, undefined],
        ['PSUBSCRIBE', '[psubscribe, news.*, 3]', 1, undefined],
        ['PING', '[pong, ]', 1, 2],
        ['UNSUBSCRIBE', t2[3]!.data.response?.value, 2, 1],
        ['PUNSUBSCRIBE', '[punsubscribe, news.*, 0]', 1, undefined],
        ['GET', 'me', 1, undefined],
        ['QUIT', 'OK', 1, undefined],
      ],
    );
    assert.equal(t2[0]!.response!.bytes, 64);
    // channels are unsubscribed in the server's dict order
    assert.match(String(t2[3]!.data.response?.value), /^\[unsubscribe, ch(1|2), 2\], \[unsubscribe, ch(1|2), 1\]$/);
    assert.ok(t2.every((t) => t.request && t.response && t.notes.length === 0));

    const sub3 = byFirst.get(resp('HELLO', '3').toString('latin1'))!;
    const t3 = replay(sub3);
    assertTiles(sub3, t3);
    assert.deepEqual(
      t3.map((t) => [t.data.request?.method, t.data.response?.type, t.data.pushes]),
      [
        ['HELLO', '%', undefined],
        ['SUBSCRIBE', '>', undefined],
        ['PING', '+', 1],
        ['UNSUBSCRIBE', '>', undefined],
        ['GET', '$', undefined],
        ['QUIT', '+', undefined],
      ],
    );

    const publishers = f.connections.filter((c) => c !== sub2 && c !== sub3);
    assert.equal(publishers.length, 4);
    for (const c of publishers) assert.deepEqual(rows(replay(c)).map((x) => [x[0], x[2]]), [['PUBLISH', '1']]);
  });

  it('MONITOR lines are not replies', () => {
    const f = load('monitor');
    const mon = replay(f.connections[0]!);
    assert.deepEqual(
      mon.map((t) => [t.data.request?.method, t.data.response?.value, t.data.pushes]),
      [
        ['MONITOR', 'OK', undefined],
        ['RESET', 'RESET', 2],
        ['PING', 'PONG', undefined],
        ['QUIT', 'OK', undefined],
      ],
    );
  });

  it('a 100 KB value: gaps inside the bulk string keep sync', () => {
    const f = load('bigvalue');
    const [set, get, strlen] = f.connections.map((c) => {
      const txns = replay(c);
      assertTiles(c, txns);
      assert.equal(txns.length, 1);
      assert.deepEqual(txns[0]!.notes, []);
      return txns[0]!;
    });
    const value = Buffer.alloc(100 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = 0x61 + (i % 26);
    assert.deepEqual([set!.data.request?.method, set!.data.request?.resource, set!.request?.bytes, set!.data.response?.value], ['SET', 'big', resp('set', 'big', value).length, 'OK']);
    assert.ok(set!.data.request!.query.startsWith('set big abcdefghijklmnopqrstuvwxyzabc'));
    assert.ok(set!.data.request!.query.endsWith('...'));
    assert.deepEqual([get!.data.request?.method, get!.response?.bytes], ['GET', bulk(value).length]);
    assert.equal(get!.data.response?.value, `${value.subarray(0, 1024).toString()}...`);
    assert.deepEqual(rows([strlen!])[0], ['STRLEN', 'strlen big', '102400', 25, 9]);
  });

  it('ioredis: HELLO 3, a pipeline with an error, MULTI', () => {
    const conn = load('ioredis').connections[0]!;
    const txns = replay(conn);
    assertTiles(conn, txns);
    const r = rows(txns);
    assert.deepEqual(
      r.map((x) => x[0]),
      ['HELLO', 'CLIENT SETINFO', 'CLIENT SETINFO', 'INFO', 'SET', 'GET', 'INCR', 'HSET', 'HGETALL', 'INCR', 'MULTI', 'SET', 'INCR', 'EXEC', 'GET', 'QUIT'],
    );
    assert.match(String(r[3]![2]), /^# Server\r\nredis_version:/);
    assert.equal(txns[3]!.data.response?.type, '=');
    assert.deepEqual(r.slice(4), [
      ['SET', 'set io:k1 v1', 'OK', resp('set', 'io:k1', 'v1').length, 5],
      ['GET', 'get io:k1', 'v1', resp('get', 'io:k1').length, 8],
      ['INCR', 'incr io:cnt', '1', resp('incr', 'io:cnt').length, 4],
      ['HSET', 'hset io:h f v', '1', resp('hset', 'io:h', 'f', 'v').length, 4],
      ['HGETALL', 'hgetall io:h', '{f: v}', resp('hgetall', 'io:h').length, 18],
      ['INCR', 'incr io:k1', { error: 'ERR value is not an integer or out of range' }, resp('incr', 'io:k1').length, 46],
      ['MULTI', 'multi', 'OK', 15, 5],
      ['SET', 'set io:m 1', 'QUEUED', resp('set', 'io:m', '1').length, 9],
      ['INCR', 'incr io:m', 'QUEUED', resp('incr', 'io:m').length, 9],
      ['EXEC', 'exec', '[OK, 2]', 14, 13],
      ['GET', 'get io:m', '2', resp('get', 'io:m').length, 7],
      ['QUIT', 'quit', 'OK', 14, 5],
    ]);
  });

  it('gives the same transactions however the recorded chunks are split', () => {
    const rnd = prng(2024);
    for (const name of ['cli', 'inline', 'pipe', 'resp3', 'multi', 'pubsub', 'monitor', 'bigvalue', 'ioredis']) {
      for (const conn of load(name).connections) {
        const whole = replay(conn);
        for (let round = 0; round < 5; round++) {
          const split = replay(conn, (n) => Array.from({ length: Math.floor(rnd() * 4) }, () => Math.floor(rnd() * n)).sort((a, b) => a - b));
          assert.deepEqual(split, whole, name);
        }
      }
    }
  });
});
