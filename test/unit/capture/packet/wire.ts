/** Building TCP/IP packets and packet records for the packet-mode unit tests. */
import { encodePacketRecord } from '../../../../src/capture/packet/records';
import { PacketType } from '../../../../src/capture/packet/layout';
import { TCP_ACK } from '../../../../src/capture/pcap/packet';
import { ipBytes } from '../../../../src/util/community-id';

export interface End {
  ip: string;
  port: number;
}

export interface TcpSpec {
  from: End;
  to: End;
  seq: number;
  ack?: number;
  flags?: number;
  payload?: Buffer;
}

/** An IPv4 or IPv6 packet (from the IP header on) holding one TCP segment. */
export function tcpPacket(s: TcpSpec): Buffer {
  const payload = s.payload ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(s.from.port, 0);
  tcp.writeUInt16BE(s.to.port, 2);
  tcp.writeUInt32BE(s.seq >>> 0, 4);
  tcp.writeUInt32BE((s.ack ?? 0) >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = s.flags ?? TCP_ACK;
  tcp.writeUInt16BE(65535, 14);
  if (!s.from.ip.includes(':')) {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 20 + payload.length, 2);
    ip[8] = 64;
    ip[9] = 6;
    ipBytes(s.from.ip).copy(ip, 12);
    ipBytes(s.to.ip).copy(ip, 16);
    return Buffer.concat([ip, tcp, payload]);
  }
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(20 + payload.length, 4);
  ip[6] = 6;
  ip[7] = 64;
  ipBytes(s.from.ip).copy(ip, 8);
  ipBytes(s.to.ip).copy(ip, 24);
  return Buffer.concat([ip, tcp, payload]);
}

export interface RecordOptions {
  tsNs: number;
  /** Payload head the "kernel" copies (max_payload); the rest is cut, its last `tail` bytes kept. */
  maxPayload?: number;
  tail?: number;
  ifindex?: number;
  vlan?: number;
}

/** The ring-buffer record the socket filter would write for this packet. */
export function record(packet: Buffer, o: RecordOptions): Buffer {
  const v6 = packet[0] >> 4 === 6;
  const hdr = (v6 ? 40 : 20) + 20;
  const payload = packet.length - hdr;
  const max = o.maxPayload ?? 4096;
  const cut = payload > max;
  const headEnd = hdr + Math.min(payload, max);
  const tail = cut ? Math.min(o.tail ?? 256, packet.length - headEnd) : 0;
  return encodePacketRecord({
    tsNs: o.tsNs,
    len: packet.length,
    ifindex: o.ifindex ?? 1,
    protocol: o.vlan !== undefined ? 0x8100 : v6 ? 0x86dd : 0x0800,
    pktType: PacketType.HOST,
    vlan: o.vlan,
    head: packet.subarray(0, headEnd),
    tail: packet.subarray(packet.length - tail),
  });
}

/** A whole TCP conversation: handshake, the client's and server's messages in turn, FINs. */
export function conversation(client: End, server: End, exchanges: Array<[Buffer, Buffer]>, t0Ns: number, o: Omit<RecordOptions, 'tsNs'> = {}): Buffer[] {
  const out: Buffer[] = [];
  let t = t0Ns;
  let cseq = 1000;
  let sseq = 5000;
  const rec = (p: TcpSpec) => {
    t += 100_000;
    out.push(record(tcpPacket(p), { ...o, tsNs: t }));
  };
  rec({ from: client, to: server, seq: cseq, flags: 0x02 });
  rec({ from: server, to: client, seq: sseq, ack: cseq + 1, flags: 0x12 });
  cseq++;
  sseq++;
  for (const [req, res] of exchanges) {
    rec({ from: client, to: server, seq: cseq, ack: sseq, payload: req });
    cseq += req.length;
    rec({ from: server, to: client, seq: sseq, ack: cseq, payload: res });
    sseq += res.length;
  }
  rec({ from: client, to: server, seq: cseq, ack: sseq, flags: 0x11 });
  rec({ from: server, to: client, seq: sseq, ack: cseq + 1, flags: 0x11 });
  return out;
}
