import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createPipeline } from '../../../src/agent/pipeline';
import type { CaptureEvent } from '../../../src/capture/events';
import { EventDir, EventKind, type VerdictName } from '../../../src/capture/layout';
import { validateConfig } from '../../../src/config';
import type { ProcessCache, ProcessInfo } from '../../../src/conn/process-info';
import type { Output } from '../../../src/outputs/types';
import type { ProtocolModule } from '../../../src/protocols/types';
import type { TxnDocument } from '../../../src/publish/document';
import { createLogger } from '../../../src/util/logger';

const REQ = Buffer.from('GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n');
const RES = Buffer.from('HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n');

/** Fake clocks and a collecting output around a real pipeline. */
function harness(overrides: Record<string, unknown> = {}, verdicts: Array<[number, VerdictName]> = []) {
  let wallMs = 1_000_000;
  let monoNs = 5e12;
  let sweeps = 0;
  const docs: TxnDocument[] = [];
  const output: Output = {
    name: 'test',
    publish: (d) => docs.push(...d),
    flush: async () => {},
    stats: () => ({ published: docs.length, dropped: 0, queued: 0 }),
  };
  const processes: ProcessCache = {
    lookup: (h): ProcessInfo => ({ pid: h.pid, name: h.comm, ppid: h.ppid, userId: h.uid, fromProc: false }),
    size: () => 0,
    sweep: () => {
      sweeps++;
    },
  };
  const config = validateConfig({ join_window_ms: 500, transaction_timeout_ms: 1000, ...overrides }, 'test');
  const pipeline = createPipeline({
    config,
    outputs: [output],
    processes,
    logger: createLogger('silent'),
    now: () => wallMs,
    monoNowNs: () => monoNs,
    onVerdicts: (v) => verdicts.push(...v),
  });
  return {
    pipeline,
    docs,
    advance(ms: number) {
      wallMs += ms;
      monoNs += ms * 1e6;
      pipeline.tick();
    },
    mono: () => monoNs,
    sweeps: () => sweeps,
  };
}

interface SocketSpec {
  sockId: number;
  tgid: number;
  comm: string;
  localPort: number;
  remotePort: number;
}

const CURL: SocketSpec = { sockId: 100, tgid: 4242, comm: 'curl', localPort: 40000, remotePort: 8080 };
const NGINX: SocketSpec = { sockId: 200, tgid: 777, comm: 'nginx', localPort: 8080, remotePort: 40000 };

function event(s: SocketSpec, kind: EventKind, fields: Partial<CaptureEvent> = {}): CaptureEvent {
  return {
    kind,
    dir: EventDir.EGRESS,
    tsNs: 5e12,
    enterNs: 5e12,
    cgroupId: 1,
    sockId: s.sockId,
    tgid: s.tgid,
    tid: s.tgid,
    ppid: 1,
    uid: 0,
    len: 0,
    seq: 0,
    fd: 3,
    family: 4,
    localIp: '127.0.0.1',
    localPort: s.localPort,
    remoteIp: '127.0.0.1',
    remotePort: s.remotePort,
    source: 0,
    comm: s.comm,
    netns: 1,
    payload: Buffer.alloc(0),
    tail: Buffer.alloc(0),
    ...fields,
  };
}

function data(s: SocketSpec, dir: EventDir, seq: number, bytes: Buffer, tsNs: number, len = bytes.length): CaptureEvent {
  return event(s, EventKind.DATA, { dir, seq: seq >>> 0, payload: bytes, len, tsNs, enterNs: tsNs });
}

const CLIENT_ISN = 0xfffffff0; // wraps inside the first request
const SERVER_ISN = 1000;

describe('pipeline', () => {
  test('both ends on this host: one document with both processes, durations from kernel times', () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    p.onEvent(event(CURL, EventKind.CONNECT, { seq: CLIENT_ISN }));
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: CLIENT_ISN }));
    p.onEvent(data(CURL, EventDir.EGRESS, CLIENT_ISN, REQ, t + 1000));
    p.onEvent(data(NGINX, EventDir.INGRESS, CLIENT_ISN, REQ, t + 2000));
    p.onEvent(data(NGINX, EventDir.EGRESS, SERVER_ISN, RES, t + 5000));
    p.onEvent(data(CURL, EventDir.INGRESS, SERVER_ISN, RES, t + 9000));
    p.onBatchEnd();
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.equal(d.query, 'GET /hello');
    assert.equal(d.source.process.name, 'curl');
    assert.equal(d.source.process.pid, 4242);
    assert.equal(d.destination.process.name, 'nginx');
    assert.equal(d.process.pid, 777);
    assert.equal(d.event.duration, 8000);
    assert.equal(d.packetbeat_ebpf.server_duration, 3000);
    assert.equal(d.source.port, 40000);
    assert.equal(d.destination.port, 8080);
    assert.equal(d.http.response.status_code, 200);
    assert.equal(d.source.bytes, REQ.length);
    assert.equal(d.destination.bytes, RES.length);
    assert.equal(h.pipeline.stats().shadowed, 1, 'the server socket is timed from the client parse');
  });

  test('holding: while a request waits for its response (timers have work), not once it is answered or timed out', () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    assert.equal(p.holding(), false, 'a new pipeline holds nothing');
    p.onEvent(event(CURL, EventKind.CONNECT, { seq: CLIENT_ISN }));
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: CLIENT_ISN }));
    p.onEvent(data(CURL, EventDir.EGRESS, CLIENT_ISN, REQ, t + 1000));
    p.onEvent(data(NGINX, EventDir.INGRESS, CLIENT_ISN, REQ, t + 2000));
    p.onBatchEnd();
    assert.equal(p.holding(), true, 'a request without its response');
    p.onEvent(data(NGINX, EventDir.EGRESS, SERVER_ISN, RES, t + 5000));
    p.onEvent(data(CURL, EventDir.INGRESS, SERVER_ISN, RES, t + 9000));
    p.onBatchEnd();
    assert.equal(h.docs.length, 1);
    // the next tick forgets the answered connection
    h.advance(100);
    assert.equal(p.holding(), false, 'answered and published');
    // another request on the connection, never answered: held until the transaction timeout
    const c2 = (CLIENT_ISN + REQ.length) >>> 0;
    p.onEvent(data(CURL, EventDir.EGRESS, c2, REQ, t + 10_000));
    p.onEvent(data(NGINX, EventDir.INGRESS, c2, REQ, t + 11_000));
    p.onBatchEnd();
    assert.equal(p.holding(), true);
    h.advance(2000);
    h.advance(600);
    assert.equal(h.docs.length, 2, 'reported unanswered');
    assert.equal(p.holding(), false, 'timed out and published');
  });

  test('the process cache is swept every few seconds (with the idle connections), not at every tick', () => {
    const h = harness();
    h.advance(100);
    const first = h.sweeps();
    assert.equal(first, 0, 'not at the first tick');
    for (let i = 0; i < 40; i++) h.advance(100);
    assert.equal(h.sweeps(), first, '4 s of ticks: no other sweep');
    for (let i = 0; i < 20; i++) h.advance(100);
    assert.equal(h.sweeps(), first + 1, 'one more after 5 s');
  });

  test('the shadowed server socket is told to the kernel, and its later payload-less events still time it', () => {
    const verdicts: Array<[number, VerdictName]> = [];
    const h = harness({}, verdicts);
    const p = h.pipeline;
    const t = h.mono();
    p.onEvent(event(CURL, EventKind.CONNECT, { seq: CLIENT_ISN }));
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: CLIENT_ISN }));
    p.onEvent(data(CURL, EventDir.EGRESS, CLIENT_ISN, REQ, t + 1000));
    p.onEvent(data(NGINX, EventDir.INGRESS, CLIENT_ISN, REQ, t + 2000));
    p.onBatchEnd();
    assert.deepEqual(verdicts, [[NGINX.sockId, 'shadow']]);
    // from now on the kernel sends the server's data without payload
    p.onEvent(data(NGINX, EventDir.EGRESS, SERVER_ISN, Buffer.alloc(0), t + 5000, RES.length));
    p.onEvent(data(CURL, EventDir.INGRESS, SERVER_ISN, RES, t + 9000));
    // a second exchange entirely after the verdict
    const c2 = (CLIENT_ISN + REQ.length) >>> 0;
    p.onEvent(data(CURL, EventDir.EGRESS, c2, REQ, t + 10_000));
    p.onEvent(data(NGINX, EventDir.INGRESS, c2, Buffer.alloc(0), t + 11_000, REQ.length));
    p.onEvent(data(NGINX, EventDir.EGRESS, SERVER_ISN + RES.length, Buffer.alloc(0), t + 12_500, RES.length));
    p.onEvent(data(CURL, EventDir.INGRESS, SERVER_ISN + RES.length, RES, t + 14_000));
    p.onBatchEnd();
    assert.equal(h.docs.length, 2);
    const [a, b] = h.docs as Array<Record<string, any>>;
    assert.equal(a.packetbeat_ebpf.server_duration, 3000);
    assert.equal(b.packetbeat_ebpf.server_duration, 1500);
    assert.equal(b.event.duration, 4000);
    assert.equal(b.destination.process.name, 'nginx');
    assert.equal(p.stats().parseErrors, 0);
  });

  test("the server's events were lost: the client's view is emitted alone at once", () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    p.onEvent(event(CURL, EventKind.CONNECT, { seq: CLIENT_ISN }));
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: CLIENT_ISN }));
    p.onEvent(data(CURL, EventDir.EGRESS, CLIENT_ISN, REQ, t + 1));
    p.onEvent(data(NGINX, EventDir.INGRESS, CLIENT_ISN, REQ, t + 2));
    // the server's write of the response never reached the agent; a later one did
    p.onEvent(data(NGINX, EventDir.EGRESS, SERVER_ISN + RES.length, Buffer.from('late'), t + 6));
    p.onEvent(data(CURL, EventDir.INGRESS, SERVER_ISN, RES, t + 9));
    p.onBatchEnd();
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.deepEqual(d.packetbeat_ebpf.views, ['client']);
    assert.equal(d.event.duration, 8);
  });

  test('only the client is traced: emitted alone after the join window', () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    p.onEvent(event(CURL, EventKind.CONNECT, { seq: 1 }));
    p.onEvent(data(CURL, EventDir.EGRESS, 1, REQ, t + 10));
    p.onEvent(data(CURL, EventDir.INGRESS, 50, RES, t + 20));
    p.onBatchEnd();
    assert.equal(h.docs.length, 0, 'waits for the server view (peer is on loopback)');
    h.advance(600);
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.deepEqual(d.packetbeat_ebpf.views, ['client']);
    assert.equal(d.source.process.name, 'curl');
    assert.equal(d.destination.process, undefined);
    assert.equal(d.process.name, 'curl');
  });

  test('a lost event becomes a gap: the body is skipped and the next request still parses', () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    const big = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n');
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    p.onEvent(data(NGINX, EventDir.INGRESS, 0, REQ, t));
    p.onEvent(data(NGINX, EventDir.EGRESS, 0, big, t + 1));
    // 4000 body bytes arrive; 6000 are in an event the agent never saw
    p.onEvent(data(NGINX, EventDir.EGRESS, big.length, Buffer.alloc(4000, 0x61), t + 2));
    p.onEvent(data(NGINX, EventDir.INGRESS, REQ.length, REQ, t + 3));
    p.onEvent(data(NGINX, EventDir.EGRESS, big.length + 10000, RES, t + 4));
    p.onEvent(event(NGINX, EventKind.CLOSE));
    h.advance(600);
    assert.equal(h.docs.length, 2);
    const [first, second] = h.docs as Array<Record<string, any>>;
    assert.equal(first.http.response.body.bytes, 10000);
    assert.match(JSON.stringify(first.error), /Packet loss while capturing the response/);
    assert.equal(second.http.response.status_code, 200);
    assert.equal(second.error, undefined);
    assert.equal(h.pipeline.stats().gapBytes, 6000);
  });

  test('a payload head plus tail (max_payload) is no loss: chunked end seen in the tail', () => {
    const h = harness();
    const p = h.pipeline;
    const t = h.mono();
    const body = Buffer.alloc(100_000, 0x62);
    const wire = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    p.onEvent(data(NGINX, EventDir.INGRESS, 0, REQ, t));
    const ev = data(NGINX, EventDir.EGRESS, 0, wire.subarray(0, 4096), t + 1, wire.length);
    ev.tail = wire.subarray(wire.length - 256);
    p.onEvent(ev);
    h.advance(600);
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.equal(d.http.response.body.bytes, body.length);
    assert.equal(d.destination.bytes, wire.length);
    assert.equal(d.error, undefined);
  });

  test('a request never answered is reported after the transaction timeout', () => {
    const h = harness();
    const p = h.pipeline;
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    p.onEvent(data(NGINX, EventDir.INGRESS, 0, REQ, h.mono()));
    h.advance(500);
    assert.equal(h.docs.length, 0);
    h.advance(1200); // timed out; now waits for the client's view in the join window
    h.advance(600);
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.equal(d.status, 'Error');
    assert.equal(d.event.outcome, 'unknown');
    assert.equal(d.error.message, 'Unmatched request');
  });

  test('sockets of other ports and the inode reused by a new connection', () => {
    const h = harness({ infer_protocols: false });
    const p = h.pipeline;
    const other: SocketSpec = { ...CURL, sockId: 300, remotePort: 9999 };
    p.onEvent(event(other, EventKind.CONNECT, { seq: 0 }));
    p.onEvent(data(other, EventDir.EGRESS, 0, REQ, h.mono()));
    assert.equal(p.stats().connections, 0);
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    p.onEvent(data(NGINX, EventDir.INGRESS, 0, REQ, h.mono()));
    // same inode, new connection (accept): the old one's request is reported, the new one starts clean
    p.onEvent(event({ ...NGINX, remotePort: 40001 }, EventKind.ACCEPT, { seq: 500 }));
    p.onEvent(data({ ...NGINX, remotePort: 40001 }, EventDir.INGRESS, 500, REQ, h.mono()));
    p.onEvent(data({ ...NGINX, remotePort: 40001 }, EventDir.EGRESS, 7, RES, h.mono()));
    h.advance(600);
    const docs = h.docs as Array<Record<string, any>>;
    assert.equal(docs.length, 2);
    assert.deepEqual(docs.map((d) => [d.source.port, d.status]).sort(), [[40000, 'Error'], [40001, 'OK']]);
  });

  test('hostile bytes on a connection never throw and are counted as parse errors', () => {
    const h = harness();
    const p = h.pipeline;
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    p.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    let seq = 0;
    for (let i = 0; i < 300; i++) {
      const b = Buffer.alloc(1 + Math.floor(rnd() * 3000));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
      const len = b.length + (rnd() < 0.2 ? Math.floor(rnd() * 100000) : 0);
      p.onEvent(data(NGINX, i % 2 ? EventDir.EGRESS : EventDir.INGRESS, i % 2 ? seq : seq, b, h.mono(), len));
      seq += len;
    }
    h.advance(2000);
    assert.ok(p.stats().parseErrors > 0);
  });
});

describe('content inference on unconfigured ports', () => {
  const APP: SocketSpec = { sockId: 500, tgid: 900, comm: 'app', localPort: 41000, remotePort: 9999 };
  const SRV: SocketSpec = { sockId: 501, tgid: 901, comm: 'srv', localPort: 9999, remotePort: 41000 };

  test('HTTP on port 9999 is recognised, its held events replayed, the kernel told to track', () => {
    const verdicts: Array<[number, VerdictName]> = [];
    const h = harness({}, verdicts);
    const p = h.pipeline;
    const t = h.mono();
    p.onEvent(event(APP, EventKind.CONNECT, { seq: 10 }));
    p.onEvent(event(SRV, EventKind.ACCEPT, { seq: 10 }));
    // the request arrives in two pieces: the first is not enough to decide
    p.onEvent(data(APP, EventDir.EGRESS, 10, REQ.subarray(0, 3), t + 1));
    p.onEvent(data(APP, EventDir.EGRESS, 13, REQ.subarray(3), t + 2));
    p.onEvent(data(SRV, EventDir.INGRESS, 10, REQ, t + 3));
    p.onEvent(data(SRV, EventDir.EGRESS, 0, RES, t + 4));
    p.onEvent(data(APP, EventDir.INGRESS, 0, RES, t + 5));
    p.onBatchEnd();
    assert.deepEqual(verdicts.sort(), [[500, 'track'], [501, 'shadow'], [501, 'track']]);
    assert.equal(h.docs.length, 1);
    const d = h.docs[0] as Record<string, any>;
    assert.equal(d.query, 'GET /hello');
    assert.equal(d.destination.port, 9999);
    assert.equal(d.source.process.name, 'app');
    assert.equal(d.destination.process.name, 'srv');
    assert.equal(d.event.duration, 4);
    // the client socket decided; the server socket took its answer and is timed, not parsed
    assert.equal(p.stats().inferred, 1);
    assert.equal(p.stats().shadowed, 1);
    assert.equal(d.packetbeat_ebpf.server_duration, 1); // read at t+3, answered at t+4
  });

  test('bytes of no known protocol: ignored, nothing emitted, the kernel told to drop it', () => {
    const verdicts: Array<[number, VerdictName]> = [];
    const h = harness({}, verdicts);
    const p = h.pipeline;
    p.onEvent(event(APP, EventKind.CONNECT, { seq: 0 }));
    p.onEvent(data(APP, EventDir.EGRESS, 0, Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'latin1'), h.mono()));
    p.onEvent(data(APP, EventDir.EGRESS, 11, Buffer.from('more'), h.mono()));
    p.onBatchEnd();
    h.advance(2000);
    assert.deepEqual(verdicts, [[500, 'ignore']]);
    assert.equal(h.docs.length, 0);
    assert.equal(p.stats().inferIgnored, 1);
    assert.equal(p.stats().parseErrors, 0);
  });

  test('off: unknown ports are not looked at', () => {
    const verdicts: Array<[number, VerdictName]> = [];
    const h = harness({ infer_protocols: false }, verdicts);
    h.pipeline.onEvent(event(APP, EventKind.CONNECT, { seq: 0 }));
    h.pipeline.onEvent(data(APP, EventDir.EGRESS, 0, REQ, h.mono()));
    h.pipeline.onBatchEnd();
    assert.equal(h.pipeline.stats().connections, 0);
    assert.deepEqual(verdicts, []);
  });
});

describe('a decoder bug costs its connection, never the agent', () => {
  test('a session that throws, and document fields that throw, are counted and contained', () => {
    const broken: ProtocolModule = {
      name: 'http',
      createSession: (sink) => ({
        feed(_from, data) {
          if (data.includes('boom')) throw new Error('decoder bug');
          sink.onTransaction({ request: { startNs: 1, endNs: 2, bytes: 4, streamOffset: 0 }, response: { startNs: 3, endNs: 4, bytes: 4, streamOffset: 0 }, notes: [], data: {} });
        },
        gap() {},
        end() {},
        expire() {
          throw new Error('expire bug');
        },
        close() {
          throw new Error('close bug');
        },
        pending: () => 1,
        bufferedBytes: () => 0,
      }),
      documentFields: () => {
        throw new Error('document bug');
      },
      detect: () => 'no',
    };
    const docs: TxnDocument[] = [];
    const pipeline = createPipeline({
      config: validateConfig({ join_window_ms: 0 }, 'test'),
      outputs: [{ name: 't', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: 0, dropped: 0, queued: 0 }) }],
      processes: { lookup: (h) => ({ pid: h.pid, name: h.comm, ppid: 0, userId: 0, fromProc: false }), size: () => 0, sweep: () => {} },
      logger: createLogger('silent'),
      modules: new Map([['http', broken]]),
    });
    pipeline.onEvent(event(NGINX, EventKind.ACCEPT, { seq: 0 }));
    pipeline.onEvent(data(NGINX, EventDir.INGRESS, 0, Buffer.from('fine'), 1));
    pipeline.onEvent(data(NGINX, EventDir.INGRESS, 4, Buffer.from('boom'), 2));
    pipeline.onEvent(event(CURL, EventKind.CONNECT, { seq: 0 }));
    pipeline.onEvent(data(CURL, EventDir.EGRESS, 0, Buffer.from('fine'), 3));
    pipeline.onBatchEnd();
    pipeline.tick();
    pipeline.flush();
    const s = pipeline.stats();
    assert.equal(docs.length, 0);
    assert.ok(s.internalErrors >= 4, JSON.stringify(s)); // two documents, one feed, one expire or close
    assert.equal(s.connections, 0);
  });
});
