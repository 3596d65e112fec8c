import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bulk, harness, prng, resp, run, summary, type Step, type Txn } from './helpers';

const C = (data: string | Buffer): Step => ({ from: 'client', data: typeof data === 'string' ? Buffer.from(data, 'latin1') : data });
const S = (data: string | Buffer): Step => ({ from: 'server', data: typeof data === 'string' ? Buffer.from(data, 'latin1') : data });

/** A conversation touching every reply type, inline commands, pub/sub, attributes and pushes. */
const CONVERSATION: Step[] = [
  C(resp('HELLO', '3')),
  S('%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n'),
  C(Buffer.concat([resp('SET', 'k', 'v'), resp('GET', 'k'), resp('GET', 'missing')])),
  S('+OK\r\n$1\r\nv\r\n_\r\n'),
  C('PING\r\nset "a b" \'c d\'\r\n'),
  S('+PONG\r\n+OK\r\n'),
  C(resp('HGETALL', 'h')),
  S('|1\r\n+ttl\r\n:10\r\n%2\r\n$1\r\na\r\n#t\r\n$1\r\nb\r\n,1.5\r\n'),
  C(resp('SMEMBERS', 's')),
  S('>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n~2\r\n(12345678901234567890\r\n=7\r\ntxt:abc\r\n'),
  C(resp('FCALL', 'f', '0')),
  S('!10\r\nERR failed\r\n'),
  C(resp('LRANGE', 'l', '0', '-1')),
  S('*3\r\n*2\r\n:1\r\n$-1\r\n*0\r\n*-1\r\n'),
  C(resp('SUBSCRIBE', 'x', 'y')),
  S('>3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\ny\r\n:2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$2\r\nhi\r\n'),
  C(resp('PING')),
  S('+PONG\r\n'),
  C(resp('SET', 'big', 'B'.repeat(3000))),
  S('+OK\r\n'),
  C(resp('GET', 'big')),
  S(bulk('B'.repeat(3000))),
  C(resp('INCR', 'k')),
  S('-ERR value is not an integer or out of range\r\n'),
];

function facts(txns: Txn[]): unknown[] {
  return txns.map((t) => ({ ...summary(t), times: [t.request?.startNs, t.request?.endNs, t.response?.startNs, t.response?.endNs] }));
}

describe('redis: results do not depend on how the bytes are split', () => {
  const whole = facts(run(CONVERSATION));

  it('parses the reference conversation', () => {
    assert.deepEqual(
      whole.map((f) => (f as { method: unknown }).method),
      ['HELLO', 'SET', 'GET', 'GET', 'PING', 'SET', 'HGETALL', 'SMEMBERS', 'FCALL', 'LRANGE', 'SUBSCRIBE', 'PING', 'SET', 'GET', 'INCR'],
    );
    assert.deepEqual(
      whole.map((f) => (f as { status: unknown }).status),
      ['OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'Error', 'OK', 'OK', 'OK', 'OK', 'OK', 'Error'],
    );
  });

  it('at every single byte boundary of every message', { timeout: 60_000 }, () => {
    CONVERSATION.forEach((st, i) => {
      for (let k = 1; k < st.data.length; k++) {
        const got = facts(run(CONVERSATION, (step) => (step === i ? [k] : [])));
        assert.deepEqual(got, whole, `step ${i} split at ${k}`);
      }
    });
  });

  it('one byte at a time', () => {
    assert.deepEqual(facts(run(CONVERSATION, (_, len) => Array.from({ length: len }, (_, j) => j + 1))), whole);
  });

  it('at random points (seeded)', { timeout: 60_000 }, () => {
    const rnd = prng(42);
    for (let round = 0; round < 200; round++) {
      const got = facts(
        run(CONVERSATION, (_, len) => {
          const n = Math.floor(rnd() * 6);
          return Array.from({ length: n }, () => Math.floor(rnd() * len)).sort((a, b) => a - b);
        }),
      );
      assert.deepEqual(got, whole, `round ${round}`);
    }
  });
});

// ---- generated values against a reference renderer ---------------------------

type Value =
  | { t: 'simple' | 'error' | 'int' | 'double' | 'big'; s: string }
  | { t: 'bulk' | 'verbatim' | 'bulkerr'; s: string }
  | { t: 'nil2' | 'null' | 'nilarray' }
  | { t: 'bool'; b: boolean }
  | { t: 'array' | 'set' | 'push'; items: Value[] }
  | { t: 'map'; pairs: Array<[Value, Value]> }
  | { t: 'attr'; attrs: Array<[Value, Value]>; v: Value };

function gen(rnd: () => number, depth: number): Value {
  const word = () => Array.from({ length: Math.floor(rnd() * 8) }, () => String.fromCharCode(0x61 + Math.floor(rnd() * 26))).join('');
  const k = Math.floor(rnd() * (depth > 4 ? 9 : 14));
  switch (k) {
    case 0:
      return { t: 'simple', s: word() };
    case 1:
      return { t: 'int', s: String(Math.floor(rnd() * 2e6) - 1e6) };
    case 2:
      return { t: 'bulk', s: word() + '\r\n' + word() };
    case 3:
      return { t: 'nil2' };
    case 4:
      return { t: 'null' };
    case 5:
      return { t: 'bool', b: rnd() < 0.5 };
    case 6:
      return { t: 'double', s: (rnd() * 100).toFixed(3) };
    case 7:
      return { t: 'verbatim', s: word() };
    case 8:
      return { t: 'big', s: '1234567890123456789012345' };
    case 9:
    case 10:
      return { t: rnd() < 0.7 ? 'array' : 'set', items: Array.from({ length: Math.floor(rnd() * 4) }, () => gen(rnd, depth + 1)) };
    case 11:
      return { t: 'map', pairs: Array.from({ length: Math.floor(rnd() * 3) }, () => [gen(rnd, depth + 1), gen(rnd, depth + 1)] as [Value, Value]) };
    case 12:
      return { t: 'attr', attrs: [[{ t: 'simple', s: 'a' }, gen(rnd, depth + 1)]], v: gen(rnd, depth + 1) };
    default:
      return { t: 'nilarray' };
  }
}

function encode(v: Value): string {
  switch (v.t) {
    case 'simple':
      return `+${v.s}\r\n`;
    case 'error':
      return `-${v.s}\r\n`;
    case 'int':
      return `:${v.s}\r\n`;
    case 'double':
      return `,${v.s}\r\n`;
    case 'big':
      return `(${v.s}\r\n`;
    case 'bulk':
      return `$${Buffer.byteLength(v.s)}\r\n${v.s}\r\n`;
    case 'verbatim':
      return `=${v.s.length + 4}\r\ntxt:${v.s}\r\n`;
    case 'bulkerr':
      return `!${v.s.length}\r\n${v.s}\r\n`;
    case 'nil2':
      return '$-1\r\n';
    case 'nilarray':
      return '*-1\r\n';
    case 'null':
      return '_\r\n';
    case 'bool':
      return v.b ? '#t\r\n' : '#f\r\n';
    case 'array':
    case 'set':
    case 'push':
      return `${v.t === 'array' ? '*' : v.t === 'set' ? '~' : '>'}${v.items.length}\r\n${v.items.map(encode).join('')}`;
    case 'map':
      return `%${v.pairs.length}\r\n${v.pairs.map(([a, b]) => encode(a) + encode(b)).join('')}`;
    case 'attr':
      return `|${v.attrs.length}\r\n${v.attrs.map(([a, b]) => encode(a) + encode(b)).join('')}${encode(v.v)}`;
  }
}

/** The expected rendering (recursive: fine for the test's small depths). */
function render(v: Value): string {
  switch (v.t) {
    case 'nil2':
    case 'nilarray':
    case 'null':
      return 'nil';
    case 'bool':
      return String(v.b);
    case 'array':
    case 'set':
    case 'push':
      return `[${v.items.map(render).join(', ')}]`;
    case 'map':
      return `{${v.pairs.map(([a, b]) => `${render(a)}: ${render(b)}`).join(', ')}}`;
    case 'attr':
      return render(v.v);
    default:
      return v.s;
  }
}

describe('redis: generated replies', () => {
  it('renders and sizes random nested values, fed in random pieces', { timeout: 60_000 }, () => {
    const rnd = prng(7);
    for (let round = 0; round < 300; round++) {
      const values = Array.from({ length: 5 }, () => gen(rnd, 0));
      const steps: Step[] = [];
      for (const v of values) {
        steps.push(C(resp('GET', 'x')), S(encode(v)));
      }
      const txns = run(steps, (_, len) => Array.from({ length: Math.floor(rnd() * 4) }, () => Math.floor(rnd() * len)).sort((a, b) => a - b), {
        maxTextLength: 100_000,
      });
      assert.deepEqual(
        txns.map((t) => [t.data.response?.value, t.response?.bytes]),
        values.map((v) => [render(v), Buffer.byteLength(encode(v))]),
        `round ${round}: ${values.map(encode).join(' | ')}`,
      );
    }
  });
});

// ---- garbage -------------------------------------------------------------------

describe('redis: garbage never throws and memory stays bounded', () => {
  const BOUND = 1024 * 1024 + 64 * 1024; // queue bound + reader buffers

  it('random bytes and random gaps in both directions', { timeout: 60_000 }, () => {
    const rnd = prng(1234);
    for (let round = 0; round < 200; round++) {
      const h = harness();
      let ts = 0;
      for (let i = 0; i < 50; i++) {
        ts += Math.floor(rnd() * 1000);
        const from = rnd() < 0.5 ? 'client' : 'server';
        const r = rnd();
        if (r < 0.1) h.session.gap(from, 1 + Math.floor(rnd() * 10_000), ts, rnd() < 0.5);
        else if (r < 0.15) h.session.expire(ts - Math.floor(rnd() * 2000));
        else {
          const b = Buffer.alloc(1 + Math.floor(rnd() * 300));
          // a mix of random bytes and RESP punctuation, to get deep into the state machines
          const alphabet = '*$+-:_#,(!=%~|>\r\n0123456789abc-';
          for (let j = 0; j < b.length; j++) b[j] = rnd() < 0.5 ? Math.floor(rnd() * 256) : alphabet.charCodeAt(Math.floor(rnd() * alphabet.length));
          h.session.feed(from, b, ts);
        }
        assert.ok(h.session.bufferedBytes() < BOUND);
      }
      h.session.close(ts + 1);
      assert.equal(h.session.pending(), 0);
      for (const t of h.txns) assert.ok(t.request || t.response);
    }
  });

  it('valid conversations with corrupted bytes', { timeout: 60_000 }, () => {
    const rnd = prng(99);
    const clean = CONVERSATION.map((s) => s.data);
    for (let round = 0; round < 300; round++) {
      const h = harness();
      let ts = 0;
      CONVERSATION.forEach((st, i) => {
        const b = Buffer.from(clean[i]!);
        const flips = Math.floor(rnd() * 3);
        for (let f = 0; f < flips; f++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        ts += 100;
        if (rnd() < 0.1) h.session.gap(st.from, Math.floor(rnd() * b.length) + 1, ts, rnd() < 0.5);
        else h.session.feed(st.from, b, ts);
        assert.ok(h.session.bufferedBytes() < BOUND);
      });
      h.session.expire(ts + 1);
      h.session.close(ts + 2);
      assert.equal(h.session.pending(), 0);
    }
  });

  it('huge declared lengths and counts do not allocate', () => {
    const h = harness();
    h.c(resp('GET', 'a'));
    h.s('$4294967295\r\nabc');
    h.s('*2147483647\r\n');
    h.c('*2147483647\r\n$2147483647\r\nxyz');
    assert.ok(h.session.bufferedBytes() < 64 * 1024);
    h.session.close(1e9);
    assert.equal(h.session.pending(), 0);
  });

  it('an endless line is counted, not stored', () => {
    const h = harness();
    h.c(resp('GET', 'a'));
    for (let i = 0; i < 100; i++) h.s(i === 0 ? `+${'x'.repeat(100_000)}` : 'y'.repeat(100_000));
    assert.ok(h.session.bufferedBytes() < 64 * 1024);
    h.s('\r\n');
    assert.equal(h.txns[0]?.response?.bytes, 1 + 100 * 100_000 + 2);
    assert.ok(h.txns[0]?.data.response?.value.endsWith('...'));
  });
});
