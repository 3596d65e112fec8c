import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import type { ProcessInfo } from '../../../src/conn/process-info';
import { createJoiner, type Joiner } from '../../../src/txn/join';
import type { FlowTuple, Transaction, TransactionView } from '../../../src/txn/types';

const TUPLE: FlowTuple = { family: 4, clientIp: '127.0.0.1', clientPort: 40001, serverIp: '127.0.0.1', serverPort: 8080 };

function proc(pid: number, name: string): ProcessInfo {
  return { pid, name, ppid: 1, userId: 0, fromProc: true };
}

let viewNo = 0;
function view(side: 'client' | 'server', requestSeq: number | undefined, tuple: FlowTuple = TUPLE): TransactionView {
  const n = ++viewNo;
  return {
    protocol: 'http',
    side,
    tuple,
    process: side === 'client' ? proc(1000 + n, 'curl') : proc(2000 + n, 'nginx'),
    netns: 4026531840,
    requestSeq,
    startNs: n * 1000,
    endNs: n * 1000 + 500,
    txn: { notes: [], data: {} },
  };
}

function setup(windowMs = 500, maxPending?: number): { joiner: Joiner; out: Transaction[]; clock: { t: number } } {
  const out: Transaction[] = [];
  const clock = { t: 10_000 };
  const joiner = createJoiner({ windowMs, maxPending, emit: (txn) => out.push(txn), now: () => clock.t });
  return { joiner, out, clock };
}

describe('joiner', () => {
  test('client then server with the same tuple and seq join into one transaction', () => {
    const { joiner, out } = setup();
    const c = view('client', 12345);
    const s = view('server', 12345);
    joiner.offer(c, true);
    assert.equal(out.length, 0, 'the first view waits for its peer');
    assert.equal(joiner.pending(), 1);
    joiner.offer(s, true);
    assert.equal(out.length, 1);
    assert.equal(out[0].client, c);
    assert.equal(out[0].server, s);
    assert.equal(joiner.pending(), 0);
  });

  test('server then client join the same way', () => {
    const { joiner, out } = setup();
    const s = view('server', 777);
    const c = view('client', 777);
    joiner.offer(s, true);
    joiner.offer(c, true);
    assert.equal(out.length, 1);
    assert.equal(out[0].client, c);
    assert.equal(out[0].server, s);
    assert.equal(joiner.pending(), 0);
  });

  test('sequence 0 is a sequence like any other', () => {
    const { joiner, out } = setup();
    joiner.offer(view('client', 0), true);
    joiner.offer(view('server', 0), true);
    assert.equal(out.length, 1);
    assert.ok(out[0].client && out[0].server);
  });

  test('a waiting peer is joined even when the second view says it has none', () => {
    const { joiner, out } = setup();
    const s = view('server', 5);
    const c = view('client', 5);
    joiner.offer(s, true);
    joiner.offer(c, false);
    assert.equal(out.length, 1);
    assert.equal(out[0].client, c);
    assert.equal(out[0].server, s);
  });

  test('different sequence numbers do not join', () => {
    const { joiner, out } = setup();
    joiner.offer(view('client', 100), true);
    joiner.offer(view('server', 101), true);
    assert.equal(out.length, 0);
    assert.equal(joiner.pending(), 2);
    joiner.flush();
    assert.equal(out.length, 2);
    assert.ok(out.every((t) => (t.client === undefined) !== (t.server === undefined)), 'each emitted alone');
  });

  test('different tuples do not join', () => {
    const { joiner, out } = setup();
    joiner.offer(view('client', 100), true);
    joiner.offer(view('server', 100, { ...TUPLE, clientPort: 40002 }), true);
    joiner.offer(view('server', 100, { ...TUPLE, serverIp: '10.0.0.1' }), true);
    assert.equal(out.length, 0);
    assert.equal(joiner.pending(), 3);
  });

  test('two views of the same side never join each other; the older one goes out alone', () => {
    const { joiner, out } = setup();
    const first = view('client', 9);
    const second = view('client', 9);
    joiner.offer(first, true);
    joiner.offer(second, true);
    assert.deepEqual([...out], [{ client: first }]);
    assert.equal(joiner.pending(), 1);
    const s = view('server', 9);
    joiner.offer(s, true);
    assert.equal(out.length, 2);
    assert.equal(out[1].client, second);
    assert.equal(out[1].server, s);
  });

  test('mayHavePeer=false emits at once', () => {
    const { joiner, out } = setup();
    const c = view('client', 42);
    joiner.offer(c, false);
    assert.deepEqual([...out], [{ client: c }]);
    assert.equal(joiner.pending(), 0);
    const s = view('server', 43);
    joiner.offer(s, false);
    assert.deepEqual(out[1], { server: s });
  });

  test('a zero window emits at once', () => {
    const { joiner, out } = setup(0);
    const c = view('client', 1);
    joiner.offer(c, true);
    assert.deepEqual([...out], [{ client: c }]);
    assert.equal(joiner.pending(), 0);
  });

  test('a view without requestSeq is emitted alone at once', () => {
    const { joiner, out } = setup();
    const c = view('client', undefined);
    const s = view('server', undefined);
    joiner.offer(c, true);
    assert.deepEqual([...out], [{ client: c }]);
    joiner.offer(s, true);
    assert.deepEqual([...out], [{ client: c }, { server: s }]);
    assert.equal(joiner.pending(), 0);
  });

  test('a view whose window passed is emitted alone by tick()', () => {
    const { joiner, out, clock } = setup(500);
    const c = view('client', 1);
    joiner.offer(c, true); // deadline 10_500
    clock.t += 200;
    const s = view('server', 2);
    joiner.offer(s, true); // deadline 10_700

    clock.t = 10_499;
    joiner.tick();
    assert.equal(out.length, 0);
    clock.t = 10_500;
    joiner.tick();
    assert.deepEqual([...out], [{ client: c }]);
    assert.equal(joiner.pending(), 1);

    clock.t = 10_699;
    joiner.tick();
    assert.equal(out.length, 1);
    clock.t = 11_000;
    joiner.tick();
    assert.deepEqual([...out], [{ client: c }, { server: s }]);
    assert.equal(joiner.pending(), 0);
  });

  test('a peer arriving after the window no longer joins', () => {
    const { joiner, out, clock } = setup(500);
    const c = view('client', 3);
    joiner.offer(c, true);
    clock.t += 600;
    joiner.tick();
    const s = view('server', 3);
    joiner.offer(s, true);
    assert.deepEqual([...out], [{ client: c }]);
    assert.equal(joiner.pending(), 1);
  });

  test('a peer arriving inside the window joins even if tick() ran', () => {
    const { joiner, out, clock } = setup(500);
    joiner.offer(view('server', 4), true);
    clock.t += 499;
    joiner.tick();
    joiner.offer(view('client', 4), true);
    assert.equal(out.length, 1);
    assert.ok(out[0].client && out[0].server);
  });

  test('flush() emits everything still waiting, in arrival order', () => {
    const { joiner, out } = setup();
    const a = view('client', 1);
    const b = view('server', 2);
    const c = view('client', 3);
    joiner.offer(a, true);
    joiner.offer(b, true);
    joiner.offer(c, true);
    assert.equal(out.length, 0);
    joiner.flush();
    assert.deepEqual([...out], [{ client: a }, { server: b }, { client: c }]);
    assert.equal(joiner.pending(), 0);
    joiner.flush();
    assert.equal(out.length, 3, 'nothing twice');
  });

  test('past maxPending the oldest view is emitted alone and counted', () => {
    const { joiner, out } = setup(500, 2);
    const a = view('client', 1);
    const b = view('client', 2);
    const c = view('client', 3);
    joiner.offer(a, true);
    joiner.offer(b, true);
    assert.equal(joiner.evicted(), 0);
    joiner.offer(c, true);
    assert.equal(joiner.evicted(), 1);
    assert.deepEqual([...out], [{ client: a }]);
    assert.equal(joiner.pending(), 2);
    // the survivors still join
    joiner.offer(view('server', 3), true);
    assert.equal(out.length, 2);
    assert.equal(out[1].client, c);
    assert.equal(joiner.evicted(), 1, 'a join is not an eviction');
  });

  test('expiry and flush are not evictions', () => {
    const { joiner, clock } = setup(500, 10);
    joiner.offer(view('client', 1), true);
    clock.t += 1_000;
    joiner.tick();
    joiner.offer(view('client', 2), true);
    joiner.flush();
    assert.equal(joiner.evicted(), 0);
  });
});
