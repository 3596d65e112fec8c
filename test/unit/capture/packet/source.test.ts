import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createPipeline } from '../../../../src/agent/pipeline';
import type { NativePacketCapture, PacketBinding } from '../../../../src/capture/packet/addon';
import type { Attribution, Attributor, FlowEnds, SocketOwner } from '../../../../src/capture/packet/attribution';
import {
  PACKET_COUNTER_NAMES,
  PACKET_FIELDS,
  PACKET_HEADER_SIZE,
  PACKET_HEADROOM,
  PACKET_MAX_PORTS,
  PACKET_PAYLOAD_LIMIT,
  PACKET_TAIL_LIMIT,
} from '../../../../src/capture/packet/layout';
import { encodePacketRecord } from '../../../../src/capture/packet/records';
import { createPacketSource, type PacketSource } from '../../../../src/capture/packet/source';
import { validateConfig } from '../../../../src/config';
import type { ProcessCache, ProcessInfo } from '../../../../src/conn/process-info';
import type { Output } from '../../../../src/outputs/types';
import type { TxnDocument } from '../../../../src/publish/document';
import { createLogger } from '../../../../src/util/logger';
import { conversation, record, tcpPacket, type End } from './wire';

const PORT = 8080;
const CLIENT: End = { ip: '127.0.0.1', port: 40000 };
const SERVER: End = { ip: '127.0.0.1', port: PORT };
const REQ = Buffer.from('GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n');
const RES = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n');
const T0 = 7e12;

const CURL: SocketOwner = { pid: 4242, comm: 'curl', ppid: 1, uid: 0, netns: 4026531840, viaListener: false };
const NGINX: SocketOwner = { pid: 777, comm: 'nginx', ppid: 1, uid: 33, netns: 4026531840, viaListener: false };

/** The native side replaced by a recorder: tests hand it ring-buffer batches. */
function fakeBinding() {
  const state = {
    onBatch: undefined as ((b: Buffer) => void) | undefined,
    ports: [] as Array<[number, number]>,
    ifindexes: [] as number[],
    closed: false,
    /** What the last drain(budget) answers, records read, kernel counters (default: their index). */
    emptied: true,
    recordsRead: 0,
    counters: undefined as number[] | undefined,
  };
  class PacketCapture implements NativePacketCapture {
    attach(ifindexes: number[]) {
      state.ifindexes = ifindexes;
    }
    setPorts(p: Array<[number, number]>) {
      state.ports = p;
    }
    start(onBatch: (b: Buffer) => void) {
      state.onBatch = onBatch;
    }
    drain(): boolean {
      return state.emptied;
    }
    recordsRead() {
      return state.recordsRead;
    }
    pause() {}
    resume() {}
    counters() {
      return state.counters ?? PACKET_COUNTER_NAMES.map((_, i) => i);
    }
    guardSched() {}
    schedGuard() {
      return { boosted: false, boosts: 0, boostedMs: 0, throttles: 0, held: false, budgetMs: 2000, lastErrno: 0 };
    }
    programs() {
      return [1];
    }
    sockets() {
      return 1;
    }
    close() {
      state.closed = true;
    }
  }
  class SockDiag {
    lookup() {
      return null;
    }
    close() {}
  }
  const binding: PacketBinding = {
    PacketCapture,
    SockDiag,
    layout: {
      fields: { ...PACKET_FIELDS },
      headerSize: PACKET_HEADER_SIZE,
      payloadLimit: PACKET_PAYLOAD_LIMIT,
      headroom: PACKET_HEADROOM,
      tailLimit: PACKET_TAIL_LIMIT,
      maxPorts: PACKET_MAX_PORTS,
      counterCount: PACKET_COUNTER_NAMES.length,
    },
    yieldIfIdle: () => false,
  };
  return { binding, state };
}

function fakeAttributor(answer: (flow: FlowEnds) => Attribution): Attributor & { asked: FlowEnds[] } {
  const asked: FlowEnds[] = [];
  return {
    asked,
    attribute(flow) {
      asked.push(flow);
      return answer(flow);
    },
    stats: () => ({
      lookups: 0,
      fdScans: 0,
      clientsFound: 0,
      clientsNotLocal: 0,
      clientsClosed: 0,
      clientsUnowned: 0,
      serversFound: 0,
      serversViaListener: 0,
      serversMissed: 0,
      namespaces: 1,
      namespaceErrors: 0,
    }),
    close() {},
  };
}

interface Run {
  source: PacketSource;
  docs: TxnDocument[];
  decodeErrors: Error[];
  state: ReturnType<typeof fakeBinding>['state'];
  feed(records: Buffer[]): void;
  finish(): void;
}

/** A packet source on a fake binding feeding a real pipeline with fake clocks. */
function run(attributor: Attributor | undefined, opts: { pids?: number[]; selfPid?: number; clockMs?: () => number } = {}): Run {
  const { binding, state } = fakeBinding();
  let monoNs = T0;
  let wallMs = 1_000_000;
  const docs: TxnDocument[] = [];
  const output: Output = { name: 'test', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: docs.length, dropped: 0, queued: 0 }) };
  const processes: ProcessCache = {
    lookup: (h): ProcessInfo => ({ pid: h.pid, name: h.comm, ppid: h.ppid, userId: h.uid, fromProc: false }),
    size: () => 0,
    sweep: () => {},
  };
  const config = validateConfig({ protocols: { http: { ports: [PORT] } }, join_window_ms: 200, transaction_timeout_ms: 1000 }, 'test');
  const pipeline = createPipeline({ config, outputs: [output], processes, logger: createLogger('silent'), now: () => wallMs, monoNowNs: () => monoNs });
  const decodeErrors: Error[] = [];
  const source = createPacketSource({
    binding,
    ports: [[PORT, 1]],
    isServerPort: (p) => p === PORT,
    ifindexes: [3],
    maxPayload: 4096,
    ringBytes: 1 << 20,
    wakeupBytes: 1 << 16,
    drainIntervalMs: 10,
    attributor,
    selfPid: opts.selfPid ?? 99999,
    pids: opts.pids,
    monoNowNs: () => monoNs,
    clockMs: opts.clockMs,
    onDecodeError: (e) => decodeErrors.push(e),
  });
  source.start(pipeline);
  return {
    source,
    docs,
    decodeErrors,
    state,
    feed(records) {
      state.onBatch!(Buffer.concat(records));
    },
    finish() {
      monoNs += 2e9;
      wallMs += 2000;
      pipeline.tick();
      source.flush(1000);
      pipeline.flush();
    },
  };
}

describe('packet source', () => {
  test('fills the port filter and opens the configured interfaces', () => {
    const r = run(undefined);
    assert.deepEqual(r.state.ports, [[PORT, 1]]);
    assert.deepEqual(r.state.ifindexes, [3]);
    r.source.close();
    assert.equal(r.state.closed, true);
  });

  test('flush: 0 when the ring buffer was emptied, else the records the kernel wrote that were not read', () => {
    const r = run(undefined);
    r.state.counters = PACKET_COUNTER_NAMES.map((n) => (n === 'packets' ? 10 : 0));
    r.state.recordsRead = 4;
    assert.equal(r.source.flush(1000), 0);
    r.state.emptied = false;
    assert.equal(r.source.flush(1000), 6);
    r.source.close();
  });

  test('both ends local: one document with both processes, timed from the packets', () => {
    const attributor = fakeAttributor(() => ({ client: CURL, server: NGINX }));
    const r = run(attributor);
    const recs = conversation(CLIENT, SERVER, [[REQ, RES]], T0);
    r.feed(recs);
    r.finish();
    assert.equal(r.docs.length, 1);
    const d = r.docs[0] as Record<string, any>;
    assert.equal(d.query, 'GET /hello');
    assert.equal(d.http.response.status_code, 200);
    assert.equal(d.source.process.pid, CURL.pid);
    assert.equal(d.source.process.name, 'curl');
    assert.equal(d.destination.process.pid, NGINX.pid);
    assert.equal(d.process.pid, NGINX.pid);
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
    assert.equal(d.packetbeat_ebpf.unattributed, undefined);
    // request packet (3rd record) to response packet (4th): 100 µs apart
    assert.equal(d.event.duration, 100_000);
    assert.equal(d.source.bytes, REQ.length);
    assert.equal(d.destination.bytes, RES.length);
    // attribution is asked once per flow, with the ends as the packets show them
    assert.equal(attributor.asked.length, 1);
    assert.deepEqual(attributor.asked[0].client, CLIENT);
    assert.deepEqual(attributor.asked[0].server, SERVER);
  });

  test('no end attributable: a wire view, flagged, no process fields', () => {
    const r = run(fakeAttributor(() => ({})));
    r.feed(conversation(CLIENT, SERVER, [[REQ, RES]], T0));
    r.finish();
    assert.equal(r.docs.length, 1);
    const d = r.docs[0] as Record<string, any>;
    assert.deepEqual(d.packetbeat_ebpf.views, ['wire']);
    assert.equal(d.packetbeat_ebpf.unattributed, true);
    assert.equal(d.process, undefined);
    assert.equal(d.source.process, undefined);
    assert.equal(d.destination.process, undefined);
    assert.equal(d.http.response.status_code, 200);
    assert.equal(r.source.stats().wireFlows, 1);
  });

  test('no attributor at all: the same wire documents', () => {
    const r = run(undefined);
    r.feed(conversation(CLIENT, SERVER, [[REQ, RES]], T0));
    r.finish();
    assert.equal(r.docs.length, 1);
    assert.deepEqual((r.docs[0] as any).packetbeat_ebpf.views, ['wire']);
  });

  test('only the server is local: its view alone, the client without process', () => {
    const r = run(fakeAttributor(() => ({ server: NGINX })));
    r.feed(conversation({ ip: '10.1.2.3', port: 51000 }, { ip: '10.1.2.4', port: PORT }, [[REQ, RES]], T0));
    r.finish();
    assert.equal(r.docs.length, 1);
    const d = r.docs[0] as Record<string, any>;
    assert.deepEqual(d.packetbeat_ebpf.views, ['server']);
    assert.equal(d.destination.process.pid, NGINX.pid);
    assert.equal(d.source.process, undefined);
    assert.equal(d.source.ip, '10.1.2.3');
  });

  test('only the client is local: its view alone', () => {
    const r = run(fakeAttributor(() => ({ client: CURL })));
    r.feed(conversation({ ip: '10.1.2.3', port: 51000 }, { ip: '93.184.216.34', port: PORT }, [[REQ, RES]], T0));
    r.finish();
    assert.equal(r.docs.length, 1);
    const d = r.docs[0] as Record<string, any>;
    assert.deepEqual(d.packetbeat_ebpf.views, ['client']);
    assert.equal(d.source.process.pid, CURL.pid);
    assert.equal(d.process.pid, CURL.pid);
  });

  test("the agent's own flows are never reported", () => {
    const r = run(fakeAttributor(() => ({ client: { ...CURL, pid: 31337 }, server: NGINX })), { selfPid: 31337 });
    r.feed(conversation(CLIENT, SERVER, [[REQ, RES]], T0));
    r.finish();
    assert.equal(r.docs.length, 0);
    assert.equal(r.source.stats().skippedFlows, 1);
  });

  test('the pid filter keeps flows with an end in a listed process', () => {
    const other = { ip: '127.0.0.1', port: 40001 };
    const r = run(
      fakeAttributor((f) => (f.client.port === CLIENT.port ? { client: CURL, server: NGINX } : { client: { ...CURL, pid: 5000 } })),
      { pids: [NGINX.pid] },
    );
    r.feed([...conversation(CLIENT, SERVER, [[REQ, RES]], T0), ...conversation(other, SERVER, [[REQ, RES]], T0 + 1e6)]);
    r.finish();
    assert.equal(r.docs.length, 1);
    assert.equal((r.docs[0] as any).source.port, CLIENT.port);
    assert.equal(r.source.stats().skippedFlows, 1);
  });

  test('IPv6 and a VLAN tag held outside the data', () => {
    const c6 = { ip: '2001:db8::1', port: 40000 };
    const s6 = { ip: '2001:db8::2', port: PORT };
    const r = run(fakeAttributor(() => ({ server: NGINX })));
    r.feed(conversation(c6, s6, [[REQ, RES]], T0, { vlan: 42 }));
    r.finish();
    assert.equal(r.docs.length, 1);
    const d = r.docs[0] as Record<string, any>;
    assert.equal(d.network.type, 'ipv6');
    assert.equal(d.source.ip, '2001:db8::1');
    assert.equal(d.http.response.status_code, 200);
  });

  test('a 64 KiB (GSO) packet cut to head and tail: the body is counted, a chunked end is seen in the tail', () => {
    const body = Buffer.alloc(60_000, 0x61);
    const chunked = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const sized = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    const r = run(fakeAttributor(() => ({ client: CURL, server: NGINX })));
    r.feed(conversation(CLIENT, SERVER, [[REQ, chunked], [REQ, sized]], T0, { maxPayload: 1024 }));
    r.finish();
    assert.equal(r.docs.length, 2, JSON.stringify(r.docs.map((d) => d.error)));
    for (const d of r.docs as Array<Record<string, any>>) {
      assert.equal(d.http.response.status_code, 200);
      assert.equal(d.http.response.body.bytes, body.length);
      assert.equal(d.error, undefined);
    }
    assert.equal((r.docs[0] as any).http.response.bytes, chunked.length);
    const s = r.source.stats();
    assert.equal(s.reassembly.missingBytes, chunked.length + sized.length - 2 * (1024 + 256));
  });

  test('loopback duplicates and retransmissions are trimmed', () => {
    const r = run(fakeAttributor(() => ({ client: CURL, server: NGINX })));
    const recs = conversation(CLIENT, SERVER, [[REQ, RES]], T0);
    // every packet twice (a capture on two interfaces of a routed path)
    r.feed(recs.flatMap((x) => [x, x]));
    r.finish();
    assert.equal(r.docs.length, 1);
    assert.equal((r.docs[0] as any).destination.bytes, RES.length);
    assert.ok(r.source.stats().reassembly.retransmittedBytes >= REQ.length + RES.length);
  });

  test('hostile records never throw: garbage, lies about lengths, truncated batches; a good flow still comes out', () => {
    const r = run(fakeAttributor(() => ({ client: CURL, server: NGINX })));
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const garbage: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(rand() * 120);
      const bytes = Buffer.alloc(n);
      for (let j = 0; j < n; j++) bytes[j] = Math.floor(rand() * 256);
      // half of them look like IPv4/IPv6 TCP to the configured port
      if (n >= 40 && rand() < 0.5) {
        bytes[0] = rand() < 0.5 ? 0x45 : 0x60;
        bytes[9] = 6;
        bytes[6] = 6;
        bytes.writeUInt16BE(PORT, bytes[0] === 0x45 ? 22 : 42 <= n - 2 ? 42 : 22);
      }
      garbage.push(
        encodePacketRecord({ tsNs: T0 + i, len: Math.floor(rand() * 70000), ifindex: 1, protocol: 0x0800, pktType: 0, head: bytes, tail: Buffer.alloc(0) }),
      );
    }
    // a SYN that claims a 64 KiB payload in a 40-byte head
    const liar = tcpPacket({ from: CLIENT, to: SERVER, seq: 1, payload: REQ });
    liar.writeUInt16BE(65535, 2);
    garbage.push(encodePacketRecord({ tsNs: T0, len: 65535, ifindex: 1, protocol: 0x800, pktType: 0, head: liar.subarray(0, 40), tail: Buffer.alloc(0) }));
    assert.doesNotThrow(() => r.feed(garbage));
    // a batch that ends inside a record: reported, not thrown
    const good = record(tcpPacket({ from: CLIENT, to: SERVER, seq: 1, payload: REQ }), { tsNs: T0 });
    assert.doesNotThrow(() => r.feed([good.subarray(0, good.length - 3)]));
    assert.equal(r.decodeErrors.length, 1);
    assert.ok(r.source.stats().undecodable > 0);
    r.feed(conversation({ ip: '127.0.0.1', port: 45678 }, SERVER, [[REQ, RES]], T0 + 1e9));
    assert.doesNotThrow(() => r.finish());
    assert.ok(r.docs.some((d: any) => d.source.port === 45678 && d.http?.response?.status_code === 200));
  });

  test('attribution takes at most a quarter of each second; past it, flows go unattributed', () => {
    let ms = 0;
    // each attribution "takes" 100 ms
    const slow = fakeAttributor(() => {
      ms += 100;
      return { client: CURL, server: NGINX };
    });
    const r = run(slow, { clockMs: () => ms });
    for (let i = 0; i < 4; i++) r.feed(conversation({ ip: '127.0.0.1', port: 41000 + i }, SERVER, [[REQ, RES]], T0 + i * 1e6));
    assert.equal(slow.asked.length, 3, 'three fit in 250 ms');
    ms += 1000; // a new second
    r.feed(conversation({ ip: '127.0.0.1', port: 42000 }, SERVER, [[REQ, RES]], T0 + 9e6));
    assert.equal(slow.asked.length, 4);
    r.finish();
    const views = r.docs.map((d: any) => d.packetbeat_ebpf.views.join('+'));
    assert.deepEqual(views.sort(), ['client+server', 'client+server', 'client+server', 'client+server', 'wire']);
    assert.equal(r.source.stats().attributionSkipped, 1);
  });

  test('kernel counters come out under the syscall names and in full in the stats', () => {
    const r = run(undefined);
    const k = r.source.counters();
    assert.equal(k.events, 0); // packets
    assert.equal(k.ringbufDrops, 1);
    assert.equal(k.truncated, 2);
    assert.equal(k.filtered, 5);
    assert.equal(k.readErrors, 10); // malformed
    assert.equal(r.source.stats().kernel.loopbackDups, 7);
    assert.equal((r.source.details!() as any).packet.pureAcks, 8);
  });
});
