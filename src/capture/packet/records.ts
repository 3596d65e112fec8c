import { PACKET_FIELDS as F, PACKET_HEADER_SIZE } from './layout';

/** One packet record of the ring buffer. `head`/`tail` are views into the batch (no copy). */
export interface PacketRecord {
  /** ns, CLOCK_MONOTONIC, when the filter ran */
  tsNs: number;
  /** Bytes of the IP packet. */
  len: number;
  ifindex: number;
  /** ethertype */
  protocol: number;
  /** PacketType */
  pktType: number;
  /** VLAN id the kernel held outside the data, if any. */
  vlan?: number;
  /** The packet from its IP header: headers, then the payload head. */
  head: Buffer;
  /** The packet's last bytes when its middle was not copied (else empty). */
  tail: Buffer;
}

export class PacketBatchError extends Error {}

const TWO_32 = 4294967296;

/**
 * Decode one batch (records back to back: header + cap_len bytes). A record
 * that does not hold together ends the batch with an error after the good ones.
 */
export function decodePacketBatch(batch: Buffer, onRecord: (r: PacketRecord) => void): void {
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < PACKET_HEADER_SIZE) throw new PacketBatchError(`batch ends inside a record header at byte ${at}`);
    const capLen = batch.readUInt32LE(at + F.cap_len.offset);
    const tailLen = batch.readUInt32LE(at + F.tail_len.offset);
    const end = at + PACKET_HEADER_SIZE + capLen;
    if (end > batch.length) throw new PacketBatchError(`record at byte ${at} runs past the batch`);
    if (tailLen > capLen) throw new PacketBatchError(`record at byte ${at} has a tail longer than its data`);
    const vlanPresent = batch[at + F.vlan_present.offset] !== 0;
    onRecord({
      tsNs: batch.readUInt32LE(at + F.ts_ns.offset + 4) * TWO_32 + batch.readUInt32LE(at + F.ts_ns.offset),
      len: batch.readUInt32LE(at + F.len.offset),
      ifindex: batch.readUInt32LE(at + F.ifindex.offset),
      protocol: batch.readUInt16LE(at + F.protocol.offset),
      pktType: batch[at + F.pkt_type.offset],
      vlan: vlanPresent ? batch.readUInt16LE(at + F.vlan_tci.offset) & 0x0fff : undefined,
      head: batch.subarray(at + PACKET_HEADER_SIZE, end - tailLen),
      tail: batch.subarray(end - tailLen, end),
    });
    at = end;
  }
}

/** Encode a record the way the kernel does (tests). */
export function encodePacketRecord(r: Omit<PacketRecord, 'vlan'> & { vlan?: number }): Buffer {
  const b = Buffer.alloc(PACKET_HEADER_SIZE + r.head.length + r.tail.length);
  b.writeUInt32LE(r.tsNs % TWO_32, F.ts_ns.offset);
  b.writeUInt32LE(Math.floor(r.tsNs / TWO_32), F.ts_ns.offset + 4);
  b.writeUInt32LE(r.len, F.len.offset);
  b.writeUInt32LE(r.head.length + r.tail.length, F.cap_len.offset);
  b.writeUInt32LE(r.tail.length, F.tail_len.offset);
  b.writeUInt32LE(r.ifindex, F.ifindex.offset);
  b.writeUInt16LE(r.protocol, F.protocol.offset);
  b.writeUInt16LE(r.vlan ?? 0, F.vlan_tci.offset);
  b[F.pkt_type.offset] = r.pktType;
  b[F.vlan_present.offset] = r.vlan === undefined ? 0 : 1;
  r.head.copy(b, PACKET_HEADER_SIZE);
  r.tail.copy(b, PACKET_HEADER_SIZE + r.head.length);
  return b;
}
