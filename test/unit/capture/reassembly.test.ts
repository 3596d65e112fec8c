import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventDir, EventKind } from '../../../src/capture/layout';
import { decodeTcp, LINKTYPE, TCP_ACK, TCP_FIN, TCP_SYN } from '../../../src/capture/pcap/packet';
import { createTcpReassembler, type FlowEvent, type ReassembledFlow } from '../../../src/capture/pcap/reassembly';
import { tcpPacket, type End } from './packet/wire';

const C: End = { ip: '10.0.0.1', port: 40000 };
const S: End = { ip: '10.0.0.2', port: 80 };

function collect(maxFlows?: number) {
  const events: Array<{ flow: ReassembledFlow; e: FlowEvent & { payloadText: string; tailText: string } }> = [];
  const r = createTcpReassembler({
    isServerPort: (p) => p === 80,
    maxFlows,
    onEvent: (flow, e) => events.push({ flow, e: { ...e, payloadText: e.payload.toString(), tailText: e.tail.toString() } }),
  });
  return { r, events };
}

function seg(from: End, to: End, seq: number, payload = '', flags = TCP_ACK) {
  return decodeTcp(LINKTYPE.RAW, tcpPacket({ from, to, seq, flags, payload: Buffer.from(payload) }))!;
}

/** A segment whose middle was not captured: `head` then `tail` of a `len`-byte payload. */
function cut(from: End, to: End, seq: number, head: string, tail: string, len: number) {
  const full = tcpPacket({ from, to, seq, payload: Buffer.alloc(len, 0x2e) });
  const hdr = 40;
  const s = decodeTcp(LINKTYPE.RAW, full.subarray(0, hdr + head.length), full.length)!;
  Buffer.from(head).copy(s.payload);
  return { s, tail: Buffer.from(tail) };
}

describe('TCP reassembly', () => {
  test('a segment cut to head and tail is one event: head, gap, tail', () => {
    const { r, events } = collect();
    r.segment(seg(C, S, 100, '', TCP_SYN), 1);
    const { s, tail } = cut(C, S, 101, 'HEAD', 'TAIL', 1000);
    r.segment(s, 2, tail);
    const data = events.filter((x) => x.e.kind === EventKind.DATA);
    assert.equal(data.length, 1);
    assert.equal(data[0].e.len, 1000);
    assert.equal(data[0].e.payloadText, 'HEAD');
    assert.equal(data[0].e.tailText, 'TAIL');
    assert.equal(data[0].e.dir, EventDir.INGRESS);
    assert.equal(r.stats().missingBytes, 992);
  });

  test('a retransmission overlapping into the gap and the tail is trimmed across them', () => {
    const { r, events } = collect();
    r.segment(seg(C, S, 100, '', TCP_SYN), 1);
    r.segment(seg(C, S, 101, 'x'.repeat(500)), 2);
    // starts 500 bytes before what was delivered: head and 490 gap bytes are old
    const { s, tail } = cut(C, S, 101, 'HEAD', 'TAIL', 1000);
    r.segment(s, 3, tail);
    const last = events.filter((x) => x.e.kind === EventKind.DATA).pop()!;
    assert.equal(last.e.seq, 601);
    assert.equal(last.e.len, 500);
    assert.equal(last.e.payloadText, '');
    assert.equal(last.e.tailText, 'TAIL');
    assert.equal(r.stats().retransmittedBytes, 500);
  });

  test('a tail that would overlap the head is not used', () => {
    const { r, events } = collect();
    const { s } = cut(C, S, 101, 'HEAD', '', 10);
    r.segment(s, 1, Buffer.from('0123456789'));
    const d = events.find((x) => x.e.kind === EventKind.DATA)!;
    assert.equal(d.e.tailText, '');
  });

  test('held out-of-order segments are copies (the capture buffer is not kept alive)', () => {
    const { r, events } = collect();
    r.segment(seg(C, S, 100, '', TCP_SYN), 1);
    const later = seg(C, S, 106, 'world');
    r.segment(later, 2);
    later.payload.fill(0x21); // the batch buffer is reused
    r.segment(seg(C, S, 101, 'hello'), 3);
    assert.deepEqual(events.filter((x) => x.e.kind === EventKind.DATA).map((x) => x.e.payloadText), ['hello', 'world']);
  });

  test('past maxFlows the oldest flow is closed and forgotten', () => {
    const { r, events } = collect(2);
    for (let i = 0; i < 3; i++) r.segment(seg({ ip: C.ip, port: 40000 + i }, S, 100, '', TCP_SYN), i);
    assert.equal(r.size(), 2);
    assert.equal(r.stats().evictedFlows, 1);
    const closes = events.filter((x) => x.e.kind === EventKind.CLOSE);
    assert.deepEqual(closes.map((x) => x.flow.client.port), [40000]);
  });

  test('sweep: idle flows are closed, closed flows forgotten after their quarantine', () => {
    const { r, events } = collect();
    r.segment(seg(C, S, 100, '', TCP_SYN), 1e9);
    r.segment(seg({ ip: C.ip, port: 40001 }, S, 100, '', TCP_SYN), 1e9);
    r.segment(seg({ ip: C.ip, port: 40001 }, S, 101, '', TCP_FIN | TCP_ACK), 2e9);
    r.segment(seg(S, { ip: C.ip, port: 40001 }, 500, '', TCP_FIN | TCP_ACK), 2e9);
    r.sweep(0, 0);
    assert.equal(r.size(), 2);
    r.sweep(3e9, 0); // the open one is idle: closed and forgotten
    assert.equal(r.size(), 1);
    assert.equal(events.filter((x) => x.e.kind === EventKind.CLOSE).length, 2);
    r.sweep(3e9, 3e9);
    assert.equal(r.size(), 0);
  });
});
