import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PACKET_ADDON_PATH, type PacketBinding } from '../../../../src/capture/packet/addon';
import {
  checkPacketLayout,
  PACKET_COUNTER_NAMES,
  PACKET_FIELDS,
  PACKET_HEADER_SIZE,
  packetLayoutMismatches,
  PacketType,
  type PacketAddonLayout,
} from '../../../../src/capture/packet/layout';
import { decodePacketBatch, encodePacketRecord, PacketBatchError, type PacketRecord } from '../../../../src/capture/packet/records';

function decodeAll(batch: Buffer): PacketRecord[] {
  const out: PacketRecord[] = [];
  decodePacketBatch(batch, (r) => out.push({ ...r, head: Buffer.from(r.head), tail: Buffer.from(r.tail) }));
  return out;
}

const one: PacketRecord = {
  tsNs: 2 ** 40 + 12345,
  len: 65_000,
  ifindex: 7,
  protocol: 0x86dd,
  pktType: PacketType.OUTGOING,
  vlan: 42,
  head: Buffer.from('head bytes'),
  tail: Buffer.from('tail'),
};

describe('packet records', () => {
  test('encode → decode round trip, records back to back', () => {
    const plain: PacketRecord = { ...one, vlan: undefined, tail: Buffer.alloc(0), len: 10, tsNs: 5 };
    const got = decodeAll(Buffer.concat([encodePacketRecord(one), encodePacketRecord(plain)]));
    assert.deepEqual(got, [one, plain]);
  });

  test('the header is 32 bytes at the offsets of bpf/packet.h', () => {
    const b = encodePacketRecord(one);
    assert.equal(b.length, PACKET_HEADER_SIZE + 14);
    assert.equal(b.readUInt32LE(PACKET_FIELDS.cap_len.offset), 14);
    assert.equal(b.readUInt32LE(PACKET_FIELDS.tail_len.offset), 4);
    assert.equal(b.readUInt16LE(PACKET_FIELDS.vlan_tci.offset), 42);
  });

  test('a batch that does not hold together is an error after the good records', () => {
    const good = encodePacketRecord(one);
    const seen: number[] = [];
    assert.throws(() => decodePacketBatch(Buffer.concat([good, good.subarray(0, 20)]), (r) => seen.push(r.len)), PacketBatchError);
    assert.deepEqual(seen, [65_000]);
    assert.throws(() => decodeAll(good.subarray(0, good.length - 1)), /runs past the batch/);
    const lying = Buffer.from(good);
    lying.writeUInt32LE(100, PACKET_FIELDS.tail_len.offset);
    assert.throws(() => decodeAll(lying), /tail longer than its data/);
  });

  test('the addon reports the layout the decoder expects', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const binding = require(PACKET_ADDON_PATH) as PacketBinding;
    assert.deepEqual(packetLayoutMismatches(binding.layout), []);
    assert.equal(binding.layout.counterCount, PACKET_COUNTER_NAMES.length);
    assert.deepEqual(Object.keys(binding.layout.fields).sort(), Object.keys(PACKET_FIELDS).sort());
  });

  test('a layout that drifted is refused, naming what differs', () => {
    const drifted: PacketAddonLayout = {
      fields: { ...PACKET_FIELDS, len: { offset: 12, size: 4 }, extra: { offset: 30, size: 2 } },
      headerSize: 40,
      payloadLimit: 16384,
      headroom: 256,
      tailLimit: 256,
      maxPorts: 256,
      counterCount: 3,
    };
    const bad = packetLayoutMismatches(drifted);
    assert.ok(bad.includes('header size 40 != 32'), bad.join('; '));
    assert.ok(bad.includes(`counter count 3 != ${PACKET_COUNTER_NAMES.length}`));
    assert.ok(bad.some((b) => b.startsWith('field len at 12/4')));
    assert.ok(bad.includes('field extra only on the addon side'));
    assert.throws(() => checkPacketLayout(drifted), /rebuild both/);
  });
});
