import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';

import { pacedRedis, readReply } from '../../../bench/paced-redis';

describe('paced Redis load generator: reply reader', () => {
  test('simple strings, errors, integers and bulk strings, with the bytes they use', () => {
    assert.deepEqual(readReply(Buffer.from('+OK\r\n')), { text: 'OK', used: 5 });
    assert.deepEqual(readReply(Buffer.from('-ERR wrong type\r\n')), { text: '-ERR wrong type', used: 17 });
    assert.deepEqual(readReply(Buffer.from(':42\r\n')), { text: '42', used: 5 });
    assert.deepEqual(readReply(Buffer.from('$3\r\nv17\r\n+OK\r\n')), { text: 'v17', used: 9 });
    assert.deepEqual(readReply(Buffer.from('$-1\r\n')), { text: null, used: 5 });
    // a bulk string holding CRLF is read by its length
    assert.deepEqual(readReply(Buffer.from('$4\r\na\r\nb\r\n')), { text: 'a\r\nb', used: 10 });
  });

  test('an incomplete reply waits for more bytes', () => {
    for (const part of ['', '+O', '$3', '$3\r\n', '$3\r\nv1', '$3\r\nv17', '$3\r\nv17\r']) assert.equal(readReply(Buffer.from(part)), undefined, part);
  });

  test('anything but the replies of SET and GET is an error', () => {
    assert.throws(() => readReply(Buffer.from('*1\r\n$1\r\na\r\n')), /unexpected Redis reply type "\*"/);
    assert.throws(() => readReply(Buffer.from('$x\r\n')), /bad bulk length "x"/);
    assert.throws(() => readReply(Buffer.from('$-2\r\n')), /bad bulk length "-2"/);
    assert.throws(() => readReply(Buffer.from('$1\r\nabc\r\n')), /not followed by CRLF/);
  });
});

describe('paced Redis load generator: against a server', () => {
  test('alternates SET and GET of its own keys, counts answers and wrong replies apart', async () => {
    // a tiny in-memory server: stores SETs, answers GETs, and answers one key wrongly
    const store = new Map<string, string>();
    const commands: string[] = [];
    const server = net.createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        for (;;) {
          const m = /^\*(\d+)\r\n/.exec(buf);
          if (!m) return;
          let at = m[0].length;
          const args: string[] = [];
          for (let i = 0; i < Number(m[1]); i++) {
            const l = /^\$(\d+)\r\n/.exec(buf.slice(at));
            if (!l || buf.length < at + l[0].length + Number(l[1]) + 2) return;
            args.push(buf.slice(at + l[0].length, at + l[0].length + Number(l[1])));
            at += l[0].length + Number(l[1]) + 2;
          }
          buf = buf.slice(at);
          commands.push(args.join(' '));
          if (args[0] === 'SET') {
            store.set(args[1], args[2]);
            sock.write('+OK\r\n');
          } else {
            const v = args[1] === 't:0:1' ? 'nope' : store.get(args[1]);
            sock.write(v === undefined ? '$-1\r\n' : `$${v.length}\r\n${v}\r\n`);
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await pacedRedis({ port, connections: 2, delayMs: 1, seconds: 0.3, prefix: 't' });
      assert.ok(r.requests > 10, `${r.requests} requests`);
      assert.equal(r.badReplies, 1, 'the one wrong GET');
      assert.equal(r.requests + r.badReplies, commands.length);
      assert.deepEqual(commands.filter((c) => c.startsWith('SET t:1:')).slice(0, 2), ['SET t:1:0 v0', 'SET t:1:1 v1']);
      assert.ok(commands.includes('GET t:1:0'));
      assert.ok(r.p50us > 0 && r.p99us >= r.p50us);
    } finally {
      server.close();
    }
  });
});
