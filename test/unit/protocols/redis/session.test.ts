import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRedisModule } from '../../../../src/protocols/redis';
import { bulk, harness, resp, summary, type Txn } from './helpers';

function values(txns: Txn[]): unknown[] {
  return txns.map((t) => {
    const r = t.data.response;
    return r ? (r.isError ? { error: r.value } : r.value) : undefined;
  });
}

describe('redis replies: RESP2 types', () => {
  it('renders simple strings, errors, integers, bulk strings, nil and arrays', () => {
    const h = harness();
    const replies = [
      '+OK\r\n',
      '-ERR unknown command\r\n',
      ':42\r\n',
      ':-7\r\n',
      '$5\r\nhello\r\n',
      '$0\r\n\r\n',
      '$-1\r\n',
      '*-1\r\n',
      '*0\r\n',
      '*3\r\n$1\r\na\r\n:2\r\n*2\r\n$1\r\nb\r\n$-1\r\n',
      '*2\r\n+OK\r\n-ERR inner\r\n',
    ];
    for (const r of replies) {
      h.c(resp('GET', 'k'));
      h.s(r);
    }
    h.session.close(1e9);
    assert.deepEqual(values(h.txns), [
      'OK',
      { error: 'ERR unknown command' },
      '42',
      '-7',
      'hello',
      '',
      'nil',
      'nil',
      '[]',
      '[a, 2, [b, nil]]',
      '[OK, ERR inner]',
    ]);
    assert.deepEqual(
      h.txns.map((t) => t.response?.bytes),
      replies.map((r) => Buffer.byteLength(r)),
    );
    // an error nested in EXEC's array does not fail the transaction; a top-level one does
    assert.deepEqual(
      h.txns.map((t) => summary(t).status),
      ['OK', 'Error', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK'],
    );
    assert.equal(h.errors.length, 0);
  });

  it("keeps Packetbeat's field values for a simple session", () => {
    const h = harness();
    h.c(resp('set', 'key3', 'me'));
    h.s('+OK\r\n');
    h.c(resp('get', 'key3'));
    h.s(bulk('me'));
    h.c(resp('llen', 'key3'));
    h.s('-ERR Operation against a key holding the wrong kind of value\r\n');
    const [a, b, c] = h.txns.map(summary);
    assert.deepEqual([a?.method, a?.resource, a?.query, a?.status, a?.redis], ['SET', 'key3', 'set key3 me', 'OK', { return_value: 'OK' }]);
    assert.deepEqual([b?.method, b?.query, b?.redis], ['GET', 'get key3', { return_value: 'me' }]);
    assert.deepEqual([c?.method, c?.status, c?.redis], ['LLEN', 'Error', { error: 'ERR Operation against a key holding the wrong kind of value' }]);
  });
});

describe('redis replies: RESP3 types', () => {
  it('renders null, boolean, double, big number, verbatim, map and set', () => {
    const h = harness();
    const replies = [
      '_\r\n',
      '#t\r\n',
      '#f\r\n',
      ',3.14\r\n',
      ',-inf\r\n',
      '(3492890328409238509324850943850943825024385\r\n',
      '=15\r\ntxt:Some string\r\n',
      '%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*2\r\n:2\r\n:3\r\n',
      '~3\r\n+a\r\n+b\r\n_\r\n',
      '%0\r\n',
    ];
    for (const r of replies) {
      h.c(resp('X'));
      h.s(r);
    }
    assert.deepEqual(values(h.txns), [
      'nil',
      'true',
      'false',
      '3.14',
      '-inf',
      '3492890328409238509324850943850943825024385',
      'Some string',
      '{first: 1, second: [2, 3]}',
      '[a, b, nil]',
      '{}',
    ]);
    assert.deepEqual(
      h.txns.map((t) => [t.response?.bytes, t.response?.streamOffset]),
      replies.map((r, i) => [Buffer.byteLength(r), replies.slice(0, i).reduce((n, x) => n + Buffer.byteLength(x), 0)]),
    );
  });

  it('treats a bulk error as an error reply', () => {
    const h = harness();
    h.c(resp('FCALL', 'f', '0'));
    h.s('!21\r\nSYNTAX invalid syntax\r\n');
    assert.deepEqual(summary(h.txns[0]!).redis, { error: 'SYNTAX invalid syntax' });
    assert.equal(summary(h.txns[0]!).status, 'Error');
  });

  it('counts attributes in the reply they precede, and not as replies or elements', () => {
    const h = harness();
    const attributed = '|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n';
    const nested = '*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nx\r\n$1\r\ny\r\n';
    h.c(resp('MGET', 'a', 'b'));
    h.s(attributed);
    h.c(resp('MGET', 'x', 'y'));
    h.s(nested);
    h.c(resp('PING'));
    h.s('+PONG\r\n');
    assert.deepEqual(values(h.txns), ['[2039123, 9543892]', '[x, y]', 'PONG']);
    assert.deepEqual(
      h.txns.map((t) => t.response?.bytes),
      [attributed.length, nested.length, 7],
    );
  });

  it('does not pair out-of-band pushes with requests', () => {
    const h = harness();
    h.c(resp('HELLO', '3'));
    h.s('%1\r\n$5\r\nproto\r\n:3\r\n');
    h.c(resp('GET', 'a'));
    h.s('>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n');
    h.s('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n');
    h.s(bulk('1'));
    assert.deepEqual(values(h.txns), ['{proto: 3}', '1']);
    assert.equal(h.txns[1]?.data.pushes, 2);
    assert.equal(h.txns[1]?.response?.bytes, 7);
  });

  it('bounds nesting depth without recursion trouble', () => {
    const deep = (n: number) => '*1\r\n'.repeat(n) + ':1\r\n';
    const ok = harness();
    ok.c(resp('X'));
    ok.s(deep(64));
    assert.equal(ok.txns.length, 1);
    assert.equal(ok.txns[0]?.data.response?.value, `${'['.repeat(64)}1${']'.repeat(64)}`);

    const bad = harness();
    bad.c(resp('PING'));
    bad.s('+PONG\r\n'); // the stream is Redis: its errors are reported from now on
    bad.c(resp('X'));
    bad.s(deep(100_000));
    bad.session.close(1e12);
    assert.ok(bad.errors.some((e) => /nesting/.test(e.reason)));
    assert.equal(bad.txns.length, 2);
    assert.equal(bad.txns[1]?.response, undefined); // reported unmatched, not mis-parsed
  });

  it('keeps return values short and marks the cut', () => {
    const h = harness({ maxTextLength: 64 });
    const items = Array.from({ length: 1000 }, (_, i) => `element-${i}`);
    h.c(resp('LRANGE', 'l', '0', '-1'));
    h.s(Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items.map((x) => bulk(x))]));
    h.c(resp('GET', 'big'));
    h.s(bulk('x'.repeat(5000)));
    const [a, b] = h.txns.map((t) => t.data.response!);
    assert.ok(a.value.startsWith('[element-0, element-1, '));
    assert.ok(a.value.endsWith('...'));
    assert.equal(a.value.length, 64 + 3);
    assert.equal(b.value, `${'x'.repeat(64)}...`);
    assert.equal(b.bytes, 5000 + 9);
  });
});

describe('redis requests', () => {
  it('upper-cases the method and names subcommands of container commands', () => {
    const h = harness();
    const cmds = [
      ['config', 'get', 'maxmemory'],
      ['CLIENT', 'setname', 'app-1'],
      ['xinfo', 'STREAM', 'mystream'],
      ['SCRIPT', 'LOAD', 'return 1'],
      ['memory', 'usage', 'k'],
      ['ACL', 'SETUSER', 'alice', 'on'],
      ['COMMAND'],
      ['object', 'encoding', 'k'],
      ['hset', 'h', 'f', 'v'],
    ];
    for (const c of cmds) {
      h.c(resp(...c));
      h.s('+OK\r\n');
    }
    assert.deepEqual(
      h.txns.map((t) => {
        const s = summary(t);
        return [s.method, s.resource, s.query];
      }),
      [
        ['CONFIG GET', 'maxmemory', 'config get maxmemory'],
        ['CLIENT SETNAME', 'app-1', 'CLIENT setname app-1'],
        ['XINFO STREAM', 'mystream', 'xinfo STREAM mystream'],
        ['SCRIPT LOAD', 'return 1', 'SCRIPT LOAD return 1'],
        ['MEMORY USAGE', 'k', 'memory usage k'],
        ['ACL SETUSER', 'alice', 'ACL SETUSER alice on'],
        ['COMMAND', undefined, 'COMMAND'],
        ['OBJECT ENCODING', 'k', 'object encoding k'],
        ['HSET', 'h', 'hset h f v'],
      ],
    );
    assert.equal(h.txns[0]?.data.request?.bytes, resp('config', 'get', 'maxmemory').length);
  });

  it('parses inline commands, with quoting as redis does', () => {
    const h = harness();
    const lines = [
      'PING\r\n',
      'set greeting "hello \\"world\\"\\n" \r\n',
      "SET k 'it\\'s'\n",
      '\r\n   \r\n', // blank lines: redis sends nothing back
      'GET "\\x41\\x42"\r\n',
      '*0\r\n', // an empty multibulk: nothing back either
    ];
    const replies = ['+PONG\r\n', '+OK\r\n', '+OK\r\n', '', '$-1\r\n', ''];
    lines.forEach((l, i) => {
      h.c(l);
      if (replies[i]) h.s(replies[i]!);
    });
    h.c(resp('DBSIZE'));
    h.s(':3\r\n');
    const len = (i: number) => Buffer.byteLength(lines[i]!, 'latin1');
    assert.deepEqual(
      h.txns.map((t) => [t.data.request?.inline, summary(t).method, summary(t).resource, summary(t).query, t.request?.bytes, t.request?.streamOffset]),
      [
        [true, 'PING', undefined, 'PING', len(0), 0],
        [true, 'SET', 'greeting', 'set greeting hello "world"\n', len(1), len(0)],
        [true, 'SET', 'k', "SET k it's", len(2), len(0) + len(1)],
        [true, 'GET', 'AB', 'GET AB', len(4), len(0) + len(1) + len(2) + len(3)],
        [false, 'DBSIZE', undefined, 'DBSIZE', 16, len(0) + len(1) + len(2) + len(3) + len(4) + len(5)],
      ],
    );
  });

  it('cuts long queries and keeps the method and key', () => {
    const h = harness({ maxTextLength: 32 });
    const args = Array.from({ length: 200 }, (_, i) => `key-${i}`);
    h.c(resp('MGET', ...args));
    h.s('*0\r\n');
    h.c(resp('SET', 'k', 'v'.repeat(10_000)));
    h.s('+OK\r\n');
    const [a, b] = h.txns.map(summary);
    assert.equal(a?.method, 'MGET');
    assert.equal(a?.resource, 'key-0');
    assert.ok(String(a?.query).startsWith('MGET key-0 key-1'));
    assert.ok(String(a?.query).endsWith(' ...'));
    assert.ok(String(a?.query).length < 100);
    assert.equal(h.txns[0]?.data.request?.argc, 201);
    assert.equal(b?.resource, 'k');
    assert.equal(b?.query, `SET k ${'v'.repeat(256)}...`);
    assert.equal(b?.requestBytes, resp('SET', 'k', 'v'.repeat(10_000)).length);
  });
});

describe('redis pairing', () => {
  it('pairs pipelined requests with their replies in order', () => {
    const h = harness();
    const reqs = Array.from({ length: 50 }, (_, i) => resp('INCR', `c${i}`));
    h.c(Buffer.concat(reqs));
    h.s(Array.from({ length: 50 }, (_, i) => `:${i + 1}\r\n`).join(''));
    assert.equal(h.txns.length, 50);
    let off = 0;
    h.txns.forEach((t, i) => {
      assert.equal(summary(t).resource, `c${i}`);
      assert.equal(t.data.response?.value, String(i + 1));
      assert.equal(t.request?.streamOffset, off);
      assert.equal(t.request?.bytes, reqs[i]!.length);
      off += reqs[i]!.length;
    });
    assert.equal(h.session.pending(), 0);
  });

  it('gives MULTI commands their +QUEUED and EXEC its array', () => {
    const h = harness();
    h.c(Buffer.concat([resp('MULTI'), resp('SET', 'a', '1'), resp('INCR', 'a'), resp('EXEC')]));
    h.s('+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n');
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.value]),
      [
        ['MULTI', 'OK'],
        ['SET', 'QUEUED'],
        ['INCR', 'QUEUED'],
        ['EXEC', '[OK, 2]'],
      ],
    );
  });

  it('reports a reply that came before the waiting request as unmatched', () => {
    const h = harness();
    h.s('+OK\r\n', 100); // answer to something sent before the capture
    h.c(resp('PING'), 200);
    h.s('+PONG\r\n', 300);
    assert.deepEqual(
      h.txns.map((t) => [t.request ? summary(t).method : null, t.data.response?.value, t.notes]),
      [
        [null, 'OK', ['Unmatched response']],
        ['PING', 'PONG', []],
      ],
    );
  });

  it('pairs HELLO 3 with its map and reads RESP3 afterwards', () => {
    const h = harness();
    h.c(resp('HELLO', '3', 'SETNAME', 'x'));
    h.s('%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n');
    h.c(resp('HGETALL', 'h'));
    h.s('%1\r\n$1\r\nf\r\n$1\r\nv\r\n');
    assert.deepEqual(values(h.txns), ['{server: redis, proto: 3, modules: []}', '{f: v}']);
    assert.equal(summary(h.txns[0]!).method, 'HELLO');
  });
});

describe('redis pub/sub', () => {
  const confirm = (kind: string, ch: string | null, n: number) =>
    `*3\r\n${bulk(kind).toString()}${ch === null ? '$-1\r\n' : bulk(ch).toString()}:${n}\r\n`;
  const message = (ch: string, payload: string) => `*3\r\n$7\r\nmessage\r\n${bulk(ch).toString()}${bulk(payload).toString()}`;

  it('RESP2: confirmations answer (UN)SUBSCRIBE, messages are pushes, PING still pairs', () => {
    const h = harness();
    h.c(resp('SUBSCRIBE', 'a', 'b'));
    h.s(confirm('subscribe', 'a', 1));
    assert.equal(h.txns.length, 0); // waits for the second confirmation
    h.s(confirm('subscribe', 'b', 2));
    h.c(resp('PSUBSCRIBE', 'n.*'));
    h.s(confirm('psubscribe', 'n.*', 3));
    h.s(message('a', 'hello'));
    h.s('*4\r\n$8\r\npmessage\r\n$3\r\nn.*\r\n$3\r\nn.x\r\n$3\r\nhey\r\n');
    h.c(resp('PING'));
    h.s(message('b', 'in between'));
    h.s('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    h.c(resp('UNSUBSCRIBE'));
    h.s(confirm('unsubscribe', 'b', 2) + confirm('unsubscribe', 'a', 1));
    h.c(resp('PUNSUBSCRIBE'));
    h.s(confirm('punsubscribe', 'n.*', 0));
    h.c(resp('LRANGE', 'l', '0', '-1')); // no longer subscribed: a "message" array is a reply
    h.s(message('x', 'y'));
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.parts, t.data.pushes]),
      [
        ['SUBSCRIBE', 2, undefined],
        ['PSUBSCRIBE', 1, undefined],
        ['PING', 1, 3],
        ['UNSUBSCRIBE', 2, undefined],
        ['PUNSUBSCRIBE', 1, undefined],
        ['LRANGE', 1, undefined],
      ],
    );
    assert.equal(h.txns[0]?.response?.bytes, confirm('subscribe', 'a', 1).length + confirm('subscribe', 'b', 2).length);
    assert.equal(h.txns[2]?.data.response?.value, '[pong, ]');
    assert.equal(h.txns[5]?.data.response?.value, '[message, x, y]');
    assert.equal(h.session.pending(), 0);
  });

  it('RESP2: UNSUBSCRIBE with nothing subscribed gets its single nil confirmation', () => {
    const h = harness();
    h.c(resp('UNSUBSCRIBE'));
    h.s(confirm('unsubscribe', null, 0));
    h.c(resp('GET', 'k'));
    h.s(bulk('v'));
    assert.deepEqual(values(h.txns), ['[unsubscribe, nil, 0]', 'v']);
  });

  it('RESP2: an UNSUBSCRIBE without a known end closes at the next ordinary reply', () => {
    const h = harness();
    // subscriptions made before the capture: the counts are not known
    h.c(resp('UNSUBSCRIBE'));
    h.s(confirm('unsubscribe', 'a', 2));
    h.c(resp('PING'));
    h.s('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.parts]),
      [
        ['UNSUBSCRIBE', 1],
        ['PING', 1],
      ],
    );
  });

  it('RESP2: messages arriving with nothing pending are pushes even before a SUBSCRIBE was seen', () => {
    const h = harness();
    h.s(message('a', 'x'));
    h.c(resp('PING'));
    h.s('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    assert.equal(h.txns.length, 1);
    assert.equal(h.txns[0]?.data.pushes, 1);
  });

  it('RESP3: confirmations are pushes that answer SUBSCRIBE; messages are not paired', () => {
    const h = harness();
    h.c(resp('HELLO', '3'));
    h.s('%1\r\n$5\r\nproto\r\n:3\r\n');
    h.c(resp('SUBSCRIBE', 'ch'));
    h.s('>3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n');
    h.s('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n');
    h.c(resp('GET', 'k')); // allowed in RESP3 while subscribed
    h.s('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nbye\r\n');
    h.s(bulk('v'));
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.value, t.data.pushes]),
      [
        ['HELLO', '{proto: 3}', undefined],
        ['SUBSCRIBE', '[subscribe, ch, 1]', undefined],
        ['GET', 'v', 2],
      ],
    );
  });

  it('MONITOR: after +OK the lines are pushes; RESET ends it', () => {
    const h = harness();
    h.c(resp('MONITOR'));
    h.s('+OK\r\n');
    h.s('+1700000000.123456 [0 127.0.0.1:5555] "get" "a"\r\n');
    h.s('+1700000000.223456 [0 127.0.0.1:5555] "set" "a" "b"\r\n');
    h.c(resp('RESET'));
    h.s('+RESET\r\n');
    h.c(resp('ECHO', '1700000000.1 [x'));
    h.s(bulk('1700000000.1 [x'));
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.value, t.data.pushes]),
      [
        ['MONITOR', 'OK', undefined],
        ['RESET', 'RESET', 2],
        ['ECHO', '1700000000.1 [x', undefined],
      ],
    );
  });

  it('does not wait for replies under CLIENT REPLY OFF / SKIP', () => {
    const h = harness();
    h.c(resp('CLIENT', 'REPLY', 'SKIP'));
    h.c(resp('SET', 'a', '1')); // skipped
    h.c(resp('GET', 'a'));
    h.s(bulk('1'));
    h.c(resp('CLIENT', 'REPLY', 'OFF'));
    h.c(resp('SET', 'b', '2'));
    h.c(resp('CLIENT', 'REPLY', 'ON'));
    h.s('+OK\r\n');
    h.c(resp('GET', 'b'));
    h.s(bulk('2'));
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, summary(t).resource, summary(t).status, t.data.response?.value]),
      [
        ['CLIENT REPLY', 'SKIP', 'OK', undefined],
        ['SET', 'a', 'OK', undefined],
        ['GET', 'a', 'OK', '1'],
        ['CLIENT REPLY', 'OFF', 'OK', undefined],
        ['SET', 'b', 'OK', undefined],
        ['CLIENT REPLY', 'ON', 'OK', 'OK'],
        ['GET', 'b', 'OK', '2'],
      ],
    );
    assert.equal(h.session.pending(), 0);
  });

  it('stops at PSYNC: a replication stream follows', () => {
    const h = harness();
    h.c(resp('PSYNC', '?', '-1'));
    h.s('+FULLRESYNC 8371b4fb1155b71f4a04d3e1bc3e18c4a990aeeb 0\r\n$5\r\nREDIS');
    h.s('*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n');
    h.c(resp('REPLCONF', 'ACK', '0'));
    h.session.close(1e9);
    assert.equal(h.txns.length, 1);
    assert.equal(summary(h.txns[0]!).method, 'PSYNC');
    assert.equal(h.errors.length, 0);
  });
});

describe('redis gaps', () => {
  it('keeps sync through a gap inside a large bulk string (payload head only)', () => {
    const h = harness();
    const value = Buffer.alloc(100 * 1024, 0x61);
    const req = resp('SET', 'big', value);
    h.c(req.subarray(0, 4096), 10);
    h.session.gap('client', req.length - 4096 - 256, 10, false);
    h.c(req.subarray(req.length - 256), 10);
    h.s('+OK\r\n', 20);
    const reply = bulk(value);
    h.c(resp('GET', 'big'), 30);
    h.s(reply.subarray(0, 4096), 40);
    h.session.gap('server', reply.length - 4096 - 2, 40, false);
    h.s('\r\n', 41);
    h.c(resp('PING'), 50);
    h.s('+PONG\r\n', 60);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.request?.bytes, t.response?.bytes, t.notes, t.request?.streamOffset]),
      [
        ['SET', req.length, 5, [], 0],
        ['GET', 22, reply.length, [], req.length],
        ['PING', 14, 7, [], req.length + 22],
      ],
    );
    assert.equal(h.txns[1]?.data.response?.value, `${'a'.repeat(1024)}...`);
    assert.equal(h.txns[1]?.response?.endNs, 41);
    assert.equal(h.errors.length, 0);
  });

  it('notes real loss inside a bulk string and stays in sync', () => {
    const h = harness();
    h.c(resp('GET', 'k'));
    const reply = bulk('z'.repeat(3000));
    h.s(reply.subarray(0, 100));
    h.session.gap('server', 2000, 2000, true);
    h.s(reply.subarray(2100));
    h.c(resp('GET', 'k2'));
    h.s(bulk('ok'));
    assert.deepEqual(
      h.txns.map((t) => [t.data.response?.bytes, t.notes]),
      [
        [reply.length, ['Packet loss while capturing the response']],
        [8, []],
      ],
    );
    assert.equal(summary(h.txns[0]!).status, 'OK');
  });

  it('holds a request cut outside a bulk string open until the reply starts', () => {
    const h = harness();
    const args = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    const req = resp('DEL', ...args);
    h.c(req.subarray(0, 4096), 10);
    h.session.gap('client', req.length - 4096 - 256, 10, false);
    h.c(req.subarray(req.length - 256), 10);
    assert.equal(h.session.pending(), 1);
    h.s(':3000\r\n', 20);
    h.c(resp('PING'), 30);
    h.s('+PONG\r\n', 40);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.request?.bytes, t.data.request?.argc, t.data.response?.value]),
      [
        ['DEL', req.length, 3001, '3000'],
        ['PING', 14, 1, 'PONG'],
      ],
    );
    assert.ok(String(summary(h.txns[0]!).query).startsWith('DEL k0 k1 k2'));

    // with no reply, the quiet connection completes it
    const q = harness();
    q.c(req.subarray(0, 4096), 10);
    q.session.gap('client', req.length - 4096, 10, false);
    q.session.expire(5);
    assert.equal(q.txns.length, 0);
    q.session.expire(20);
    assert.deepEqual(
      q.txns.map((t) => [summary(t).method, t.request?.bytes, t.notes]),
      [['DEL', req.length, ['Unmatched request']]],
    );
  });

  it('notes loss in a request', () => {
    const h = harness();
    const req = resp('SET', 'k', 'q'.repeat(500));
    h.c(req.subarray(0, 50));
    h.session.gap('client', 400, 0, true);
    h.c(req.subarray(450));
    h.s('+OK\r\n');
    assert.deepEqual(h.txns[0]?.notes, ['Packet loss while capturing the request']);
    assert.equal(h.txns[0]?.request?.bytes, req.length);
  });

  it('holds a reply cut outside a bulk string open until the next request, counting its bytes', () => {
    const h = harness();
    const items = Array.from({ length: 2000 }, (_, i) => bulk(`member-${i}`));
    const reply = Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items]);
    h.c(resp('SMEMBERS', 's'), 10);
    // three reads of the reply, each copied as head + tail only
    const reads = [reply.subarray(0, 10_000), reply.subarray(10_000, 20_000), reply.subarray(20_000)];
    let ts = 20;
    for (const r of reads) {
      h.s(r.subarray(0, 4096), ts);
      h.session.gap('server', r.length - 4096 - 256, ts, false);
      h.s(r.subarray(r.length - 256), ts);
      ts += 10;
    }
    assert.equal(h.txns.length, 0);
    h.c(resp('SCARD', 's'), 100);
    h.s(':2000\r\n', 110);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.response?.bytes, t.response?.endNs, t.notes]),
      [
        ['SMEMBERS', reply.length, 40, []],
        ['SCARD', 7, 110, []],
      ],
    );
    assert.ok(h.txns[0]?.data.response?.value.startsWith('[member-0, member-1'));
    assert.ok(h.txns[0]?.data.response?.truncated);
    assert.equal(h.txns[1]?.response?.streamOffset, reply.length);
  });

  it('ends a cut reply when the connection goes quiet', () => {
    const h = harness();
    h.c(resp('KEYS', '*'), 10);
    const reply = Buffer.concat([Buffer.from('*1000\r\n'), ...Array.from({ length: 1000 }, (_, i) => bulk(`k${i}`))]);
    h.s(reply.subarray(0, 4096), 20);
    h.session.gap('server', reply.length - 4096, 20, false);
    h.session.expire(15); // still coming in: not late
    assert.equal(h.txns.length, 0);
    h.session.expire(30);
    assert.equal(h.txns.length, 1);
    assert.equal(h.txns[0]?.response?.bytes, reply.length);
    assert.deepEqual(h.txns[0]?.notes, []);
  });

  it('reports requests whose replies were lost between messages', () => {
    const h = harness();
    h.c(Buffer.concat([resp('GET', 'a'), resp('GET', 'b')]), 10);
    h.session.gap('server', 30, 20, true);
    h.c(resp('GET', 'c'), 30);
    h.s(bulk('c'), 40);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).resource, t.data.response?.value, t.notes]),
      [
        ['a', undefined, ['Unmatched request', 'Packet loss while capturing the response']],
        ['b', undefined, ['Unmatched request', 'Packet loss while capturing the response']],
        ['c', 'c', []],
      ],
    );
  });

  it('resynchronises the client stream at the next request after garbage', () => {
    const h = harness();
    h.c(resp('GET', 'a'));
    h.s(bulk('1'));
    h.c('\x00\x01garbage\r\nmore garbage *3\r\n');
    h.c(resp('GET', 'b'));
    h.s(bulk('2'));
    assert.deepEqual(values(h.txns), ['1', '2']);
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]?.fatal, false);
  });

  it('picks up a connection in the middle of a value', () => {
    const h = harness();
    h.c('ghijklmnopqrstuvwxyz\r\n', 10); // the end of a SET sent before the capture began
    h.s('lue-tail\r\n+OK\r\n', 20); // the end of a reply, then the SET's +OK
    h.c(resp('GET', 'a'), 30);
    h.s(bulk('1'), 40);
    h.c('PING\r\n', 50);
    h.s('+PONG\r\n', 60);
    h.c('UNKNOWNCMD x\r\n', 70); // after a good message, any inline command counts
    h.s("-ERR unknown command 'UNKNOWNCMD'\r\n", 80);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).method, t.data.response?.value, t.notes]),
      [
        ['GET', '1', []],
        ['PING', 'PONG', []],
        ['UNKNOWNCMD', "ERR unknown command 'UNKNOWNCMD'", []],
      ],
    );
    assert.deepEqual(h.errors, []); // a guessed start fails quietly
    assert.equal(h.txns[0]?.request?.streamOffset, 22);
    assert.equal(h.txns[0]?.response?.streamOffset, 15);
  });

  it('gives up a stream that is not RESP', () => {
    const h = harness();
    h.c(Buffer.alloc(512 * 1024, 0x16));
    assert.ok(!h.errors.some((e) => e.fatal)); // maybe the middle of a big value
    for (let i = 0; i < 200; i++) h.c(Buffer.alloc(4096, 0x16));
    assert.ok(h.errors.some((e) => e.fatal));
    const before = h.txns.length;
    h.c(resp('PING'));
    h.s('+PONG\r\n');
    assert.equal(h.txns.length, before);
  });
});

describe('redis limits and timeouts', () => {
  it('evicts the oldest requests when the queue is full and skips their replies', () => {
    const h = harness({ queueMaxMessages: 5 });
    h.c(Buffer.concat(Array.from({ length: 8 }, (_, i) => resp('GET', `k${i}`))));
    assert.equal(h.session.pending(), 5);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).resource, t.notes]),
      [0, 1, 2].map((i) => [`k${i}`, ['Unmatched request', 'Request queue full']]),
    );
    h.s(Array.from({ length: 8 }, (_, i) => bulk(`v${i}`).toString()).join(''));
    assert.deepEqual(
      h.txns.slice(3).map((t) => [summary(t).resource, t.data.response?.value]),
      [3, 4, 5, 6, 7].map((i) => [`k${i}`, `v${i}`]),
    );
    assert.equal(h.txns[3]?.data.lateReplies, 3);
  });

  it('bounds the queued bytes', () => {
    const h = harness({ queueMaxBytes: 1000 });
    for (let i = 0; i < 100; i++) h.c(resp('SET', `key-${i}`, 'v'.repeat(100)));
    assert.ok(h.session.bufferedBytes() <= 1000 + 500);
    assert.ok(h.session.pending() < 100);
    assert.equal(h.txns.length + h.session.pending(), 100);
  });

  it('expires unanswered requests, but not blocking commands before their timeout', () => {
    const s = 1e9;
    const h = harness();
    h.c(resp('BLPOP', 'q', '5'), 1 * s);
    h.session.expire(3 * s); // 2 s old, blocking for 5 s
    assert.equal(h.txns.length, 0);
    h.session.expire(6.5 * s);
    assert.equal(h.txns.length, 1);
    assert.deepEqual(h.txns[0]?.notes, ['Unmatched request']);

    const f = harness();
    f.c(resp('XREAD', 'BLOCK', '0', 'STREAMS', 's', '$'), 1 * s);
    f.session.expire(1000 * s);
    assert.equal(f.txns.length, 0);
    f.s('*1\r\n*2\r\n$1\r\ns\r\n*0\r\n', 1001 * s);
    assert.equal(summary(f.txns[0]!).method, 'XREAD');
    f.c(resp('BLPOP', 'q', '0'), 1002 * s);
    f.session.expire(Infinity); // the peer is gone
    assert.equal(f.txns.length, 2);

    const g = harness();
    g.c(resp('GET', 'k'), 1 * s);
    g.session.expire(1 * s); // not older
    assert.equal(g.txns.length, 0);
    g.session.expire(2 * s);
    assert.equal(g.txns.length, 1);
    assert.equal(g.session.pending(), 0);
  });

  it('reports pending requests at close', () => {
    const h = harness();
    h.c(Buffer.concat([resp('GET', 'a'), resp('GET', 'b')]));
    h.s(bulk('1'));
    h.session.close(1e9);
    assert.deepEqual(
      h.txns.map((t) => [summary(t).resource, t.notes]),
      [
        ['a', []],
        ['b', ['Unmatched request']],
      ],
    );
    assert.equal(h.session.pending(), 0);
  });

  it('survives a sink that throws', () => {
    const errors: string[] = [];
    const session = createRedisModule().createSession({
      onTransaction: () => {
        throw new Error('boom');
      },
      onError: (r) => errors.push(r),
    });
    session.feed('client', resp('PING'), 1);
    session.feed('server', Buffer.from('+PONG\r\n'), 2);
    session.feed('client', resp('PING'), 3);
    session.feed('server', Buffer.from('+PONG\r\n'), 4);
    assert.equal(errors.filter((e) => e.includes('boom')).length, 2);
    assert.equal(session.pending(), 0);
  });
});
