import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { readCapture } from '../../../../src/capture/pcap/file';
import { decodeTcp } from '../../../../src/capture/pcap/packet';
import { createRedisModule, detectRedis } from '../../../../src/protocols/redis';
import type { RedisDocumentFields } from '../../../../src/protocols/redis/document';
import { splitInline } from '../../../../src/protocols/redis/resp';
import type { Sender } from '../../../../src/protocols/types';
import { bulk, harness, PCAP_DIR, resp, type Txn } from './helpers';

const b = (s: string) => Buffer.from(s, 'latin1');
const server = { ip: '127.0.0.1', port: 6379 };

describe('redis detect()', () => {
  it('recognises RESP request arrays from the client alone', () => {
    assert.equal(detectRedis(resp('GET', 'k'), b('')), 'yes');
    assert.equal(detectRedis(b('*12\r\n$3\r\nSET'), b('')), 'yes');
    assert.equal(detectRedis(b('*1'), b('')), 'need-more');
    assert.equal(detectRedis(b('*1\r\n'), b('')), 'need-more');
    assert.equal(detectRedis(b('*'), b('')), 'need-more');
    assert.equal(detectRedis(b('*0\r\n$'), b('')), 'no');
    assert.equal(detectRedis(b('*1\r\n*'), b('')), 'no');
    assert.equal(detectRedis(b('*x'), b('')), 'no');
    assert.equal(detectRedis(b('*1\n$'), b('')), 'no');
  });

  it('recognises inline commands by a known command answered in RESP', () => {
    assert.equal(detectRedis(b('PING\r\n'), b('+PONG\r\n')), 'yes');
    assert.equal(detectRedis(b('set a b\r\n'), b('+OK\r\n')), 'yes');
    assert.equal(detectRedis(b('config get maxmemory\n'), b('*2\r\n')), 'yes');
    assert.equal(detectRedis(b('PING\r\n'), b('')), 'need-more');
    assert.equal(detectRedis(b('PIN'), b('')), 'need-more');
    assert.equal(detectRedis(b('get a'), b('')), 'need-more');
    // memcached and HTTP speak similar words
    assert.equal(detectRedis(b('get a\r\n'), b('VALUE a 0 1\r\n')), 'no');
    assert.equal(detectRedis(b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), b('HTTP/1.1 200 OK\r\n')), 'no');
    assert.equal(detectRedis(b('GET / HTTP/1.1\r\n'), b('')), 'no');
    assert.equal(detectRedis(b('HELO mail.example.com\r\n'), b('')), 'no');
    assert.equal(detectRedis(b('NOTACOMMAND x\r\n'), b('+OK\r\n')), 'no');
  });

  it('rejects other first bytes and a server that speaks first', () => {
    assert.equal(detectRedis(b('\x16\x03\x01\x02\x00'), b('')), 'no');
    assert.equal(detectRedis(b(''), b('220 smtp ready\r\n')), 'no');
    assert.equal(detectRedis(b(''), b('')), 'need-more');
    assert.equal(detectRedis(b('\x00\x00\x00\x08\x04\xd2\x16\x2f'), b('')), 'no');
    assert.equal(detectRedis(b('PRI * HTTP/2.0\r\n'), b('')), 'no');
  });
});

describe('redis splitInline()', () => {
  const split = (s: string) => splitInline(b(s), b(s).length);
  it('splits like sdssplitargs', () => {
    assert.deepEqual(split('  SET  a   b  '), ['SET', 'a', 'b']);
    assert.deepEqual(split('SET k "a\\tb\\x41\\"" \'x\\\'y\''), ['SET', 'k', 'a\tbA"', "x'y"]);
    assert.deepEqual(split('SET "" x'), ['SET', '', 'x']);
    assert.equal(split('SET "open'), null);
    assert.equal(split('SET "a"b'), null);
    assert.deepEqual(split('GET a\x00b c'), ['GET', 'a']);
    assert.deepEqual(split('\x00GET'), []);
    assert.deepEqual(split(''), []);
  });
});

function fields(t: Txn, options = {}): RedisDocumentFields {
  return createRedisModule(options).documentFields([t], server);
}

describe('redis documentFields()', () => {
  it('fills Packetbeat fields, ECS db.system and the event action', () => {
    const h = harness();
    h.c(resp('config', 'get', 'maxmemory'));
    h.s('*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n');
    h.c(resp('incr', 'k'));
    h.s('-ERR value is not an integer or out of range\r\n');
    const ok = fields(h.txns[0]!);
    assert.deepEqual(ok, {
      status: 'OK',
      outcome: 'success',
      matched: true,
      requestBytes: 40,
      responseBytes: 26,
      root: { method: 'CONFIG GET', resource: 'maxmemory', query: 'config get maxmemory' },
      fields: { db: { system: 'redis' }, redis: { return_value: '[maxmemory, 0]' } },
      action: 'redis.config get',
    });
    const err = fields(h.txns[1]!);
    assert.equal(err.status, 'Error');
    assert.equal(err.outcome, 'failure');
    assert.deepEqual(err.fields.redis, { error: 'ERR value is not an integer or out of range' });
    assert.equal(err.action, 'redis.incr');
  });

  it('puts the query and the return value in request/response only when asked', () => {
    const h = harness();
    h.c(resp('get', 'k'));
    h.s(bulk('v'));
    const t = h.txns[0]!;
    assert.ok(!('request' in fields(t).root) && !('response' in fields(t).root));
    assert.deepEqual(
      [fields(t, { sendRequest: true }).root.request, fields(t, { sendRequest: true }).root.response],
      ['get k', undefined],
    );
    assert.deepEqual(
      [fields(t, { sendResponse: true }).root.request, fields(t, { sendResponse: true }).root.response],
      [undefined, 'v'],
    );
    const both = fields(t, { sendRequest: true, sendResponse: true }).root;
    assert.deepEqual([both.request, both.response], ['get k', 'v']);
  });

  it('reports unmatched requests and responses as errors with unknown outcome', () => {
    const h = harness();
    h.s('+OK\r\n', 1);
    h.c(resp('GET', 'k'), 2);
    h.session.close(3);
    const [res, req] = h.txns.map((t) => fields(t));
    assert.deepEqual([res?.status, res?.outcome, res?.matched, res?.requestBytes, res?.responseBytes], ['Error', 'success', false, 0, 5]);
    assert.deepEqual([req?.status, req?.outcome, req?.matched, req?.root.method], ['Error', 'unknown', false, 'GET']);
    assert.equal(req?.fields.redis, undefined);
  });

  it('takes each message from the first view that has it', () => {
    // the client's view missed the reply, the server's view has both
    const client = harness();
    client.c(resp('GET', 'k'), 1);
    client.session.close(5);
    const srv = harness();
    srv.c(resp('GET', 'k'), 2);
    srv.s(bulk('value'), 3);
    const d = createRedisModule().documentFields([client.txns[0]!, srv.txns[0]!], server);
    assert.equal(d.matched, true);
    assert.equal(d.status, 'OK');
    assert.deepEqual(d.fields.redis, { return_value: 'value' });
    assert.equal(d.responseBytes, 11);
  });
});

describe("Packetbeat's redis_one_transaction.pcap", () => {
  function replay(): Txn[] {
    const file = path.join(PCAP_DIR, 'redis_one_transaction.pcap');
    assert.ok(fs.existsSync(file), `${file} is missing: the shared captures must be next to the project`);
    const h = harness();
    let base: number | undefined;
    for (const p of readCapture(fs.readFileSync(file))) {
      const seg = decodeTcp(p.linktype, p.data);
      if (!seg || seg.payload.length === 0) continue;
      const from: Sender = seg.dstPort === 6380 ? 'client' : 'server';
      base ??= p.tsSec;
      h.session.feed(from, seg.payload, (p.tsSec - base) * 1e9 + p.tsNsec);
    }
    h.session.close(Number.MAX_SAFE_INTEGER);
    return h.txns;
  }

  it('gives one LINDEX transaction', () => {
    const txns = replay();
    assert.equal(txns.length, 1);
    const d = fields(txns[0]!);
    assert.deepEqual(d.root, { method: 'LINDEX', resource: 'test', query: 'lindex test 1' });
    assert.deepEqual(d.fields.redis, { return_value: 'hello1' });
    assert.deepEqual([d.status, d.requestBytes, d.responseBytes], ['OK', 33, 12]);
    assert.equal(txns[0]!.response!.endNs - txns[0]!.request!.startNs, 466_000);
  });

  it('honours send_request / send_response as test_0022 expects', () => {
    const t = replay()[0]!;
    const cases: Array<[object, boolean, boolean]> = [
      [{}, false, false],
      [{ sendRequest: false, sendResponse: false }, false, false],
      [{ sendRequest: true }, true, false],
      [{ sendResponse: true }, false, true],
      [{ sendRequest: true, sendResponse: true }, true, true],
    ];
    for (const [options, request, response] of cases) {
      const root = fields(t, options).root;
      assert.equal('request' in root, request, JSON.stringify(options));
      assert.equal('response' in root, response, JSON.stringify(options));
      if (request) assert.ok(String(root.request).length > 0);
      if (response) assert.ok(String(root.response).length > 0);
    }
  });
});
