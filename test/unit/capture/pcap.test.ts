import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { replayCapture } from '../../../src/agent/replay';
import { CaptureFileError, readCapture } from '../../../src/capture/pcap/file';
import { decodeTcp, LINKTYPE, TCP_ACK, TCP_FIN, TCP_SYN } from '../../../src/capture/pcap/packet';
import { validateConfig } from '../../../src/config';
import type { Output } from '../../../src/outputs/types';
import type { TxnDocument } from '../../../src/publish/document';
import { ipBytes } from '../../../src/util/community-id';
import { createLogger } from '../../../src/util/logger';

// ---- packet building ---------------------------------------------------------

interface Seg {
  from: 'c' | 's';
  seq: number;
  ack?: number;
  flags?: number;
  data?: Buffer;
  /** µs after the first packet */
  t: number;
}

const CLIENT = { ip: '10.0.0.1', port: 50000 };
const SERVER = { ip: '10.0.0.2', port: 8080 };
const CLIENT6 = { ip: '2001:db8::1', port: 50000 };
const SERVER6 = { ip: '2001:db8::2', port: 8080 };

function tcpHeader(sport: number, dport: number, seg: Seg): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(seg.seq >>> 0, 4);
  h.writeUInt32BE((seg.ack ?? 0) >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = seg.flags ?? TCP_ACK;
  h.writeUInt16BE(65535, 14);
  return h;
}

function ipv4Packet(src: string, dst: string, tcp: Buffer, payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + tcp.length + payload.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  return Buffer.concat([ip, tcp, payload]);
}

function ipv6Packet(src: string, dst: string, tcp: Buffer, payload: Buffer): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(tcp.length + payload.length, 4);
  ip[6] = 6;
  ip[7] = 64;
  ipBytes(src).copy(ip, 8);
  ipBytes(dst).copy(ip, 24);
  return Buffer.concat([ip, tcp, payload]);
}

/** Ethernet (with a VLAN tag) + IPv4, or Linux cooked v2 + IPv6. */
function frame(seg: Seg, v6: boolean): Buffer {
  const c = v6 ? CLIENT6 : CLIENT;
  const s = v6 ? SERVER6 : SERVER;
  const [a, b] = seg.from === 'c' ? [c, s] : [s, c];
  const payload = seg.data ?? Buffer.alloc(0);
  const tcp = tcpHeader(a.port, b.port, seg);
  if (!v6) {
    const eth = Buffer.alloc(18);
    eth.writeUInt16BE(0x8100, 12); // 802.1Q
    eth.writeUInt16BE(42, 14);
    eth.writeUInt16BE(0x0800, 16);
    return Buffer.concat([eth, ipv4Packet(a.ip, b.ip, tcp, payload)]);
  }
  const sll2 = Buffer.alloc(20);
  sll2.writeUInt16BE(0x86dd, 0);
  return Buffer.concat([sll2, ipv6Packet(a.ip, b.ip, tcp, payload)]);
}

const T0 = 1_700_000_000;

function pcap(segs: Seg[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(LINKTYPE.ETHERNET, 20);
  const parts: Buffer[] = [head];
  for (const s of segs) {
    const f = frame(s, false);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(T0 + Math.floor(s.t / 1e6), 0);
    rec.writeUInt32LE(s.t % 1e6, 4);
    rec.writeUInt32LE(f.length, 8);
    rec.writeUInt32LE(f.length, 12);
    parts.push(rec, f);
  }
  return Buffer.concat(parts);
}

function block(type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const len = 12 + padded.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  padded.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

/** pcapng with nanosecond timestamps (if_tsresol = 9) on a Linux cooked v2 interface. */
function pcapng(segs: Seg[]): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  const idb = Buffer.alloc(8 + 8 + 4);
  idb.writeUInt16LE(LINKTYPE.LINUX_SLL2, 0);
  idb.writeUInt32LE(0, 4);
  idb.writeUInt16LE(9, 8); // if_tsresol
  idb.writeUInt16LE(1, 10);
  idb[12] = 9;
  // end of options (code 0, length 0) is the zeroed tail
  const parts: Buffer[] = [block(0x0a0d0d0a, shb), block(1, idb)];
  for (const s of segs) {
    const f = frame(s, true);
    const ts = BigInt(T0) * 1_000_000_000n + BigInt(s.t) * 1000n;
    const epb = Buffer.alloc(20);
    epb.writeUInt32LE(0, 0);
    epb.writeUInt32LE(Number(ts >> 32n), 4);
    epb.writeUInt32LE(Number(ts & 0xffffffffn), 8);
    epb.writeUInt32LE(f.length, 12);
    epb.writeUInt32LE(f.length, 16);
    parts.push(block(6, Buffer.concat([epb, f])));
  }
  return Buffer.concat(parts);
}

// ---- an exchange with everything TCP can do to it ----------------------------

const REQ = Buffer.from('GET /reassembled HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: t\r\n\r\n');
const BODY = Buffer.alloc(3000, 0x62);
const RES = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY]);
const C_ISN = 0xfffffff0; // sequence numbers wrap inside the request
const S_ISN = 7000;

/**
 * The request in two segments that arrive out of order, then a retransmission of
 * the first; the response in three segments of which the middle one never
 * arrives (a hole given up at the end of the capture).
 */
function messy(): Seg[] {
  const r1 = REQ.subarray(0, 20);
  const r2 = REQ.subarray(20);
  const s1 = RES.subarray(0, 1000);
  const s2 = RES.subarray(1000, 2000);
  const s3 = RES.subarray(2000);
  const c = (n: number) => (C_ISN + 1 + n) >>> 0;
  const s = (n: number) => (S_ISN + 1 + n) >>> 0;
  void s2;
  return [
    { from: 'c', seq: C_ISN, flags: TCP_SYN, t: 0 },
    { from: 's', seq: S_ISN, ack: c(0), flags: TCP_SYN | TCP_ACK, t: 100 },
    { from: 'c', seq: c(0), ack: s(0), t: 200 },
    { from: 'c', seq: c(20), ack: s(0), data: r2, t: 300 }, // arrives first
    { from: 'c', seq: c(0), ack: s(0), data: r1, t: 400 },
    { from: 'c', seq: c(0), ack: s(0), data: r1, t: 500 }, // retransmitted
    { from: 's', seq: s(0), ack: c(REQ.length), data: s1, t: 10_000 },
    { from: 's', seq: s(2000), ack: c(REQ.length), data: s3, t: 10_200 }, // s2 is lost
    { from: 'c', seq: c(REQ.length), ack: s(RES.length), flags: TCP_FIN | TCP_ACK, t: 11_000 },
    { from: 's', seq: s(RES.length), ack: c(REQ.length + 1), flags: TCP_FIN | TCP_ACK, t: 11_100 },
  ];
}

async function replayBytes(bytes: Buffer, ext: string): Promise<Array<Record<string, any>>> {
  const file = path.join(os.tmpdir(), `pbe-pcap-test-${process.pid}.${ext}`);
  fs.writeFileSync(file, bytes);
  const docs: TxnDocument[] = [];
  const output: Output = { name: 't', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: 0, dropped: 0, queued: 0 }) };
  try {
    await replayCapture(file, validateConfig({ protocols: { http: { ports: [8080] } } }, 'test'), [output], createLogger('silent'));
  } finally {
    fs.rmSync(file);
  }
  return docs as Array<Record<string, any>>;
}

describe('capture files and TCP reassembly', () => {
  for (const [kind, build, ext, client, server] of [
    ['pcap, Ethernet + VLAN, IPv4', pcap, 'pcap', CLIENT, SERVER],
    ['pcapng (ns timestamps), Linux cooked v2, IPv6', pcapng, 'pcapng', CLIENT6, SERVER6],
  ] as const) {
    test(`${kind}: reordered, retransmitted and lost segments give the right transaction`, async () => {
      const docs = await replayBytes(build(messy()), ext);
      assert.equal(docs.length, 1, JSON.stringify(docs));
      const d = docs[0];
      assert.equal(d.query, 'GET /reassembled');
      assert.equal(d.url.full, 'http://example.test:8080/reassembled');
      assert.equal(d.http.response.status_code, 200);
      assert.equal(d.http.request.bytes, REQ.length, 'retransmitted bytes counted once');
      assert.equal(d.http.response.body.bytes, BODY.length);
      assert.equal(d.destination.bytes, RES.length, 'the lost segment still counts on the wire');
      assert.equal(d.error.message, 'Packet loss while capturing the response');
      assert.equal(d.source.ip, client.ip);
      assert.equal(d.destination.ip, server.ip);
      assert.equal(d['@timestamp'], new Date(T0 * 1000 + 0.4).toISOString(), 'time the first request byte arrived');
      // the request's first byte (t=400µs: the segment after it came first) to the response's last (t=10.2 ms)
      assert.equal(d.event.duration, 9_800_000);
      assert.deepEqual(d.packetbeat_ebpf.views, ['wire']);
      assert.equal(d.process, undefined);
    });
  }

  test('readCapture: timestamps and link types of both formats', () => {
    const segs = messy();
    const a = [...readCapture(pcap(segs))];
    const b = [...readCapture(pcapng(segs))];
    assert.equal(a.length, segs.length);
    assert.equal(b.length, segs.length);
    assert.deepEqual([a[3].tsSec, a[3].tsNsec], [T0, 300_000]);
    assert.deepEqual([b[3].tsSec, b[3].tsNsec], [T0, 300_000]);
    assert.equal(a[0].linktype, LINKTYPE.ETHERNET);
    assert.equal(b[0].linktype, LINKTYPE.LINUX_SLL2);
    const seg = decodeTcp(b[3].linktype, b[3].data)!;
    assert.equal(seg.srcIp, CLIENT6.ip);
    assert.equal(seg.dstPort, 8080);
    assert.equal(seg.payload.toString('latin1'), REQ.subarray(20).toString('latin1'));
  });

  test('what is not a capture file, or is cut short, is a clear error', () => {
    assert.throws(() => [...readCapture(Buffer.from('hello world, not a pcap'))], CaptureFileError);
    const cut = pcap(messy());
    assert.throws(() => [...readCapture(cut.subarray(0, cut.length - 5))], /runs past the end/);
    const ng = pcapng(messy());
    assert.throws(() => [...readCapture(ng.subarray(0, ng.length - 3))], CaptureFileError);
  });
});
