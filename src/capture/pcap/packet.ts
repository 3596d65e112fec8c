/** Link layer → IPv4/IPv6 → TCP decoding of captured packets. */
import { formatIpv4, formatIpv6 } from '../../util/ip';

export interface TcpSegment {
  family: 4 | 6;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  /** TCP payload as captured (may be shorter than `payloadLen` with a small snaplen). */
  payload: Buffer;
  /** Payload length on the wire (from the IP header). */
  payloadLen: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export const LINKTYPE = { NULL: 0, ETHERNET: 1, RAW: 101, LINUX_SLL: 113, LOOP: 108, IPV4: 228, IPV6: 229, LINUX_SLL2: 276 } as const;

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = [0x8100, 0x88a8, 0x9100];

/** Offset and ethertype-like protocol of the network layer, or undefined. */
function network(linktype: number, d: Buffer): { at: number; proto: number } | undefined {
  switch (linktype) {
    case LINKTYPE.ETHERNET: {
      if (d.length < 14) return undefined;
      let at = 12;
      let type = d.readUInt16BE(at);
      while (ETH_VLAN.includes(type) && at + 6 <= d.length) {
        at += 4;
        type = d.readUInt16BE(at);
      }
      return { at: at + 2, proto: type };
    }
    case LINKTYPE.LINUX_SLL:
      return d.length < 16 ? undefined : { at: 16, proto: d.readUInt16BE(14) };
    case LINKTYPE.LINUX_SLL2:
      return d.length < 20 ? undefined : { at: 20, proto: d.readUInt16BE(0) };
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP: {
      if (d.length < 4) return undefined;
      // NULL: address family in the capturing host's byte order; LOOP: network order
      const fam = linktype === LINKTYPE.LOOP ? d.readUInt32BE(0) : d.readUInt32LE(0) > 0xffff ? d.readUInt32BE(0) : d.readUInt32LE(0);
      if (fam === 2) return { at: 4, proto: ETH_IPV4 };
      if (fam === 10 || fam === 24 || fam === 28 || fam === 30) return { at: 4, proto: ETH_IPV6 };
      return undefined;
    }
    case LINKTYPE.RAW:
    case 12: // DLT_RAW on some systems
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6: {
      if (d.length < 1) return undefined;
      const v = d[0] >> 4;
      return { at: 0, proto: v === 6 ? ETH_IPV6 : ETH_IPV4 };
    }
    default:
      return undefined;
  }
}

/**
 * The TCP segment in a captured packet, or undefined for anything else.
 * `wireLength`: the packet's length from the start of `d` when more than `d`
 * was on the wire; used when the IP header does not say (TSO/BIG TCP packets
 * of a local capture have a total length of 0).
 */
export function decodeTcp(linktype: number, d: Buffer, wireLength = d.length): TcpSegment | undefined {
  const net = network(linktype, d);
  if (!net) return undefined;
  let at = net.at;
  let family: 4 | 6;
  let src: string;
  let dst: string;
  let tcpAt: number;
  let ipEnd: number;
  if (net.proto === ETH_IPV4) {
    if (d.length < at + 20 || d[at] >> 4 !== 4) return undefined;
    const ihl = (d[at] & 0x0f) * 4;
    const total = d.readUInt16BE(at + 2);
    const fragOff = d.readUInt16BE(at + 6) & 0x1fff;
    if (d[at + 9] !== 6 || ihl < 20 || fragOff !== 0) return undefined; // TCP only, first fragment
    family = 4;
    src = formatIpv4(d, at + 12);
    dst = formatIpv4(d, at + 16);
    tcpAt = at + ihl;
    // total 0: TSO-offloaded capture; trust the length seen
    ipEnd = total === 0 ? wireLength : at + total;
  } else if (net.proto === ETH_IPV6) {
    if (d.length < at + 40 || d[at] >> 4 !== 6) return undefined;
    family = 6;
    src = formatIpv6(d, at + 8);
    dst = formatIpv6(d, at + 24);
    const payloadLength = d.readUInt16BE(at + 4);
    // 0: a jumbogram or a BIG TCP packet; trust the length seen
    ipEnd = payloadLength === 0 ? wireLength : at + 40 + payloadLength;
    let next = d[at + 6];
    at += 40;
    // skip extension headers: hop-by-hop, routing, destination options; fragments are dropped
    while (next === 0 || next === 43 || next === 60) {
      if (d.length < at + 8) return undefined;
      next = d[at];
      at += (d[at + 1] + 1) * 8;
    }
    if (next !== 6) return undefined;
    tcpAt = at;
  } else {
    return undefined;
  }
  if (d.length < tcpAt + 20) return undefined;
  const dataOff = (d[tcpAt + 12] >> 4) * 4;
  if (dataOff < 20) return undefined;
  const payloadStart = tcpAt + dataOff;
  const payloadLen = Math.max(0, ipEnd - payloadStart);
  return {
    family,
    srcIp: src,
    dstIp: dst,
    srcPort: d.readUInt16BE(tcpAt),
    dstPort: d.readUInt16BE(tcpAt + 2),
    seq: d.readUInt32BE(tcpAt + 4),
    ack: d.readUInt32BE(tcpAt + 8),
    flags: d[tcpAt + 13],
    payload: d.subarray(Math.min(payloadStart, d.length), Math.min(d.length, payloadStart + payloadLen)),
    payloadLen,
  };
}
