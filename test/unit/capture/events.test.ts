import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ADDON_PATH, type CaptureBinding } from '../../../src/capture/addon';
import { BatchFormatError, decodeBatch, encodeEvent, type CaptureEvent } from '../../../src/capture/events';
import {
  COUNTER_NAMES,
  INFER_EVENTS,
  EVENT_FIELDS,
  EVENT_HEADER_SIZE,
  EventDir,
  EventKind,
  layoutMismatches,
  Verdict,
  type AddonLayout,
} from '../../../src/capture/layout';
import { ipBytes } from '../../../src/util/community-id';

type EncodeInput = Parameters<typeof encodeEvent>[0];

function input(over: Partial<EncodeInput>): EncodeInput {
  return {
    kind: EventKind.DATA,
    dir: EventDir.EGRESS,
    tsNs: 1_000_002_000,
    enterNs: 1_000_001_000,
    cgroupId: 1234,
    sockId: 98765,
    tgid: 4242,
    tid: 4243,
    ppid: 1,
    uid: 1000,
    len: 0,
    seq: 0,
    fd: 5,
    family: 4,
    localAddr: ipBytes('127.0.0.1'),
    localPort: 40000,
    remoteAddr: ipBytes('127.0.0.1'),
    remotePort: 8080,
    source: 1,
    comm: 'curl',
    netns: 4026531840,
    payload: Buffer.alloc(0),
    tail: Buffer.alloc(0),
    ...over,
  };
}

/** What decoding the encoded input must give. */
function expected(e: EncodeInput, localIp: string, remoteIp: string): CaptureEvent {
  const { localAddr: _l, remoteAddr: _r, ...rest } = e;
  return { ...rest, localIp, remoteIp };
}

function decodeAll(batch: Buffer): CaptureEvent[] {
  const out: CaptureEvent[] = [];
  decodeBatch(batch, (ev) => out.push(ev));
  return out;
}

const GET = Buffer.from('GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n');

const V4 = input({
  kind: EventKind.DATA,
  dir: EventDir.EGRESS,
  tsNs: 2 ** 52 + 12345, // above 2^32: both halves of the u64 matter
  enterNs: 2 ** 40 + 7,
  cgroupId: 2 ** 52 + 0x76543210, // above 2^32: both halves
  sockId: 2 ** 33 + 1,
  tgid: 4242,
  tid: 4250,
  ppid: 77,
  uid: 65534,
  len: GET.length,
  seq: 0xfffffff0, // u32 above 2^31
  fd: 3,
  family: 4,
  localAddr: ipBytes('192.168.1.52'),
  localPort: 54585,
  remoteAddr: ipBytes('10.20.30.40'),
  remotePort: 80,
  source: 2,
  comm: 'curl',
  netns: 4026531993,
  payload: GET,
});

const V6_BODY_HEAD = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nhead-of-body');
const V6_TAIL = Buffer.from('...end-of-body');
const V6 = input({
  kind: EventKind.DATA,
  dir: EventDir.INGRESS,
  family: 6,
  localAddr: ipBytes('2001:db8::8:800:200c:417a'),
  localPort: 443,
  remoteAddr: ipBytes('fe80::200:86ff:fe05:80da'),
  remotePort: 65535,
  len: 100_050, // more than was copied: a gap between payload and tail
  seq: 1,
  comm: 'nginx',
  payload: V6_BODY_HEAD,
  tail: V6_TAIL,
});

const MAPPED = input({
  kind: EventKind.ACCEPT,
  dir: EventDir.INGRESS,
  family: 6,
  localAddr: ipBytes('::ffff:127.0.0.1'),
  localPort: 8080,
  remoteAddr: ipBytes('::ffff:10.1.2.3'),
  remotePort: 50000,
  comm: 'node',
});

const CLOSE_V6_LOOPBACK = input({
  kind: EventKind.CLOSE,
  family: 6,
  localAddr: ipBytes('::1'),
  remoteAddr: ipBytes('::1'),
  comm: 'python3',
});

describe('encodeEvent / decodeBatch', () => {
  test('encoded events have the header size plus the captured bytes', () => {
    assert.equal(EVENT_HEADER_SIZE, 128);
    assert.equal(encodeEvent(V4).length, 128 + GET.length);
    assert.equal(encodeEvent(V6).length, 128 + V6_BODY_HEAD.length + V6_TAIL.length);
    assert.equal(encodeEvent(MAPPED).length, 128);
  });

  test('one IPv4 event round-trips', () => {
    assert.deepEqual(decodeAll(encodeEvent(V4)), [expected(V4, '192.168.1.52', '10.20.30.40')]);
  });

  test('several events back to back', () => {
    const batch = Buffer.concat([V4, V6, MAPPED, CLOSE_V6_LOOPBACK].map(encodeEvent));
    const events = decodeAll(batch);
    assert.deepEqual(events, [
      expected(V4, '192.168.1.52', '10.20.30.40'),
      expected(V6, '2001:db8::8:800:200c:417a', 'fe80::200:86ff:fe05:80da'),
      expected(MAPPED, '127.0.0.1', '10.1.2.3'),
      expected(CLOSE_V6_LOOPBACK, '::1', '::1'),
    ]);
    // payload and tail are split by tail_len, and are views into the batch
    assert.equal(events[1].payload.toString(), V6_BODY_HEAD.toString());
    assert.equal(events[1].tail.toString(), '...end-of-body');
    assert.equal(events[1].len, 100_050);
    assert.equal(events[0].payload.buffer, batch.buffer);
    assert.equal(events[2].payload.length, 0);
    assert.equal(events[2].tail.length, 0);
  });

  test('v4-mapped IPv6 addresses are reported as IPv4, family stays 6', () => {
    const [ev] = decodeAll(encodeEvent(MAPPED));
    assert.equal(ev.family, 6);
    assert.equal(ev.localIp, '127.0.0.1');
    assert.equal(ev.remoteIp, '10.1.2.3');
  });

  test('IPv6 addresses come out in the canonical compressed form', () => {
    const cases: Array<[string, string]> = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['::', '::'],
      ['fe80::', 'fe80::'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first one
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
      ['0:0:0:0:1:ffff:0:1', '::1:ffff:0:1'], // ffff in the wrong group: not v4-mapped
      ['::ffff:0:0:1', '::ffff:0:0:1'],
    ];
    for (const [addr, text] of cases) {
      const [ev] = decodeAll(encodeEvent(input({ family: 6, localAddr: ipBytes(addr) })));
      assert.equal(ev.localIp, text, addr);
      // node agrees on the canonical form
      assert.equal(new URL(`http://[${addr}]/`).hostname, `[${text}]`, addr);
    }
  });

  test('comm is cut at 15 bytes (the kernel\'s TASK_COMM_LEN)', () => {
    const [ev] = decodeAll(encodeEvent(input({ comm: 'a-very-long-process-name' })));
    assert.equal(ev.comm, 'a-very-long-pro');
  });

  test('a thread that renames itself: its next events carry the new name (names are reused per thread only while the bytes match)', () => {
    const names = ['nginx', 'nginx: worker', 'nginx', 'ngin', 'nginy', 'ü-worker'];
    const batch = Buffer.concat(names.map((comm) => encodeEvent(input({ tid: 777, comm }))));
    assert.deepEqual(
      decodeAll(batch).map((e) => e.comm),
      names,
    );
    // another thread with the same bytes gets the same text
    const [other] = decodeAll(encodeEvent(input({ tid: 778, comm: 'nginx' })));
    assert.equal(other.comm, 'nginx');
  });

  test('payload-less and tail-less events have empty buffers', () => {
    const [ev] = decodeAll(encodeEvent(input({ len: 100 })));
    assert.equal(ev.payload.length, 0);
    assert.equal(ev.tail.length, 0);
    const [withTail] = decodeAll(encodeEvent(input({ len: 5000, payload: Buffer.from('head'), tail: Buffer.from('tail') })));
    assert.equal(withTail.payload.toString(), 'head');
    assert.equal(withTail.tail.toString(), 'tail');
  });

  test('an empty batch has no events', () => {
    assert.deepEqual(decodeAll(Buffer.alloc(0)), []);
  });

  test('a batch cut inside a payload: good events first, then BatchFormatError', () => {
    const good = Buffer.concat([encodeEvent(V4), encodeEvent(MAPPED)]);
    const third = encodeEvent(V6);
    const batch = Buffer.concat([good, third.subarray(0, third.length - 1)]);
    const seen: CaptureEvent[] = [];
    assert.throws(() => decodeBatch(batch, (ev) => seen.push(ev)), (err: unknown) => {
      assert.ok(err instanceof BatchFormatError);
      assert.match(err.message, new RegExp(`at byte ${good.length}\\b`));
      return true;
    });
    assert.deepEqual(seen, [expected(V4, '192.168.1.52', '10.20.30.40'), expected(MAPPED, '127.0.0.1', '10.1.2.3')]);
  });

  test('a batch cut inside a header: good events first, then BatchFormatError', () => {
    const good = encodeEvent(V4);
    const batch = Buffer.concat([good, encodeEvent(V6).subarray(0, EVENT_HEADER_SIZE - 1)]);
    const seen: CaptureEvent[] = [];
    assert.throws(() => decodeBatch(batch, (ev) => seen.push(ev)), BatchFormatError);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].localIp, '192.168.1.52');
  });

  test('a tail longer than the captured bytes is a BatchFormatError', () => {
    const bad = encodeEvent(V4);
    bad.writeUInt32LE(GET.length + 1, EVENT_FIELDS.tail_len.offset);
    assert.throws(() => decodeAll(bad), BatchFormatError);
  });
});

// ---- layout ---------------------------------------------------------------------

function ourLayout(): AddonLayout {
  const fields: AddonLayout['fields'] = {};
  for (const [name, f] of Object.entries(EVENT_FIELDS)) fields[name] = { offset: f.offset, size: f.size };
  return { fields, headerSize: EVENT_HEADER_SIZE, payloadLimit: 16384, payloadDefault: 4096, tailLimit: 256, inferEvents: INFER_EVENTS, counterCount: COUNTER_NAMES.length, verdicts: { ...Verdict } };
}

describe('layoutMismatches', () => {
  test('an identical layout has none', () => {
    assert.deepEqual(layoutMismatches(ourLayout()), []);
  });

  test('a moved field', () => {
    const l = ourLayout();
    l.fields.seq = { offset: 60, size: 4 };
    const bad = layoutMismatches(l);
    assert.equal(bad.length, 1);
    assert.match(bad[0], /\bseq\b/);
    assert.match(bad[0], /60\/4/);
    assert.match(bad[0], /56\/4/);
  });

  test('a field of another size', () => {
    const l = ourLayout();
    l.fields.netns = { offset: 120, size: 8 };
    const bad = layoutMismatches(l);
    assert.equal(bad.length, 1);
    assert.match(bad[0], /\bnetns\b/);
  });

  test('a field missing on the addon side', () => {
    const l = ourLayout();
    delete l.fields.tail_len;
    const bad = layoutMismatches(l);
    assert.equal(bad.length, 1);
    assert.match(bad[0], /tail_len/);
    assert.match(bad[0], /only on the TypeScript side/);
  });

  test('a field only the addon has', () => {
    const l = ourLayout();
    l.fields.mark = { offset: 128, size: 4 };
    const bad = layoutMismatches(l);
    assert.equal(bad.length, 1);
    assert.match(bad[0], /mark/);
    assert.match(bad[0], /only on the addon side/);
  });

  test('header size and counter count', () => {
    const l = ourLayout();
    l.headerSize = 136;
    l.counterCount = COUNTER_NAMES.length + 1;
    const bad = layoutMismatches(l);
    assert.equal(bad.length, 2);
    assert.ok(bad.some((m) => /header size 136/.test(m)));
    assert.ok(bad.some((m) => /counter count/.test(m)));
  });

  test('fields of the decoder tile the header without overlap', () => {
    const spans = Object.values(EVENT_FIELDS)
      .map((f) => [f.offset, f.offset + f.size] as const)
      .sort((a, b) => a[0] - b[0]);
    let end = 0;
    for (const [start, stop] of spans) {
      assert.ok(start >= end, `field at ${start} overlaps the one before`);
      end = stop;
    }
    assert.ok(end <= EVENT_HEADER_SIZE);
  });
});

describe('the built addon', () => {
  test('reports the layout the decoder expects', () => {
    // loading the addon needs no privileges (nothing is attached)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const binding = require(ADDON_PATH) as CaptureBinding;
    assert.equal(binding.layout.headerSize, 128);
    assert.equal(binding.layout.counterCount, COUNTER_NAMES.length);
    assert.deepEqual(layoutMismatches(binding.layout), []);
    assert.deepEqual(Object.keys(binding.layout.fields).sort(), Object.keys(EVENT_FIELDS).sort());
  });
});
