import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CaptureEvent } from '../../../src/capture/events';
import { EventKind } from '../../../src/capture/layout';
import { ConnTable, type Conn } from '../../../src/conn/table';

function ev(sockId: number, kind: number, localPort: number, remotePort: number): CaptureEvent {
  return {
    kind: kind as CaptureEvent['kind'], dir: 0, tsNs: 0, enterNs: 0, cgroupId: 0, sockId, tgid: 100 + sockId, tid: 0, ppid: 1, uid: 0, len: 0, seq: 0, fd: 3,
    family: 4, localIp: '127.0.0.1', localPort, remoteIp: '127.0.0.1', remotePort, source: 0, comm: 'x', netns: 1, payload: Buffer.alloc(0), tail: Buffer.alloc(0),
  };
}

function table(maxConns = 1000, infer = false) {
  return new ConnTable({
    protocolOfPort: (p) => (p === 80 ? 'http' : undefined),
    lookupProcess: (e) => ({ pid: e.tgid, name: e.comm, ppid: e.ppid, userId: 0, fromProc: false }),
    maxConns,
    infer,
  });
}

test('roles: connect is the client, accept the server, else the end on a protocol port serves', () => {
  const t = table();
  const none = () => {};
  assert.equal(t.resolve(ev(1, EventKind.CONNECT, 40000, 80), none)?.role, 'client');
  assert.equal(t.resolve(ev(2, EventKind.ACCEPT, 80, 40000), none)?.role, 'server');
  assert.equal(t.resolve(ev(3, EventKind.DATA, 80, 40001), none)?.role, 'server');
  assert.equal(t.resolve(ev(4, EventKind.DATA, 40001, 80), none)?.role, 'client');
  assert.equal(t.resolve(ev(5, EventKind.DATA, 40002, 9999), none), undefined, 'no protocol, no inference: not tracked');
  // both ends on this host find each other
  assert.equal(t.peerOf(t.get(1)!), t.get(2));
  assert.equal(t.peerOf(t.get(3)!), t.get(4));
});

test('full: the oldest connection is evicted (and reported), new ones still come in', () => {
  const t = table(3);
  const evicted: Conn[] = [];
  for (let i = 1; i <= 5; i++) t.resolve(ev(i, EventKind.CONNECT, 40000 + i, 80), (c) => evicted.push(c));
  assert.equal(t.size, 3);
  assert.deepEqual(evicted.map((c) => c.sockId), [1, 2]);
  assert.equal(t.evicted, 2);
  assert.ok(t.get(5));
});

test('an inode reused by a new connection starts over', () => {
  const t = table();
  const evicted: Conn[] = [];
  const first = t.resolve(ev(7, EventKind.CONNECT, 40007, 80), (c) => evicted.push(c))!;
  const again = t.resolve(ev(7, EventKind.CONNECT, 40008, 80), (c) => evicted.push(c))!;
  assert.notEqual(first, again);
  assert.deepEqual(evicted, [first]);
  assert.equal(again.tuple.clientPort, 40008);
});
