/**
 * The decoder's view of `struct pbe_packet` (bpf/packet.h). The addon reports
 * the layout its build sees; `checkPacketLayout` refuses to start when they
 * differ, so kernel, addon and TypeScript can never drift silently.
 */
export const PACKET_HEADER_SIZE = 32;
/** PBE_PKT_PAYLOAD_LIMIT: largest payload head per packet. */
export const PACKET_PAYLOAD_LIMIT = 16384;
/** PBE_PKT_HEADROOM: header bytes a record holds before the payload head. */
export const PACKET_HEADROOM = 256;
/** PBE_PKT_TAIL_LIMIT: last payload bytes copied when the middle is cut. */
export const PACKET_TAIL_LIMIT = 256;
/** PBE_PKT_MAX_PORTS: entries of the port filter. */
export const PACKET_MAX_PORTS = 256;

export const PACKET_FIELDS = {
  ts_ns: { offset: 0, size: 8 },
  len: { offset: 8, size: 4 },
  cap_len: { offset: 12, size: 4 },
  tail_len: { offset: 16, size: 4 },
  ifindex: { offset: 20, size: 4 },
  protocol: { offset: 24, size: 2 },
  vlan_tci: { offset: 26, size: 2 },
  pkt_type: { offset: 28, size: 1 },
  vlan_present: { offset: 29, size: 1 },
} as const;

/** linux/if_packet.h: where a packet was going when the socket saw it. */
export const PacketType = { HOST: 0, BROADCAST: 1, MULTICAST: 2, OTHERHOST: 3, OUTGOING: 4 } as const;

/** enum pbe_pkt_counter, in order. */
export const PACKET_COUNTER_NAMES = [
  'packets',
  'ringbufDrops',
  'truncated',
  'bytes',
  'seen',
  'filtered',
  'notTcp',
  'loopbackDups',
  'pureAcks',
  'fragments',
  'malformed',
] as const;
export type PacketCounters = Record<(typeof PACKET_COUNTER_NAMES)[number], number>;

export interface PacketAddonLayout {
  fields: Record<string, { offset: number; size: number }>;
  headerSize: number;
  payloadLimit: number;
  headroom: number;
  tailLimit: number;
  maxPorts: number;
  counterCount: number;
}

/** Differences between the addon's layout and ours; empty when they agree. */
export function packetLayoutMismatches(addon: PacketAddonLayout): string[] {
  const out: string[] = [];
  const consts: Array<[string, number, number]> = [
    ['header size', addon.headerSize, PACKET_HEADER_SIZE],
    ['payload limit', addon.payloadLimit, PACKET_PAYLOAD_LIMIT],
    ['headroom', addon.headroom, PACKET_HEADROOM],
    ['tail limit', addon.tailLimit, PACKET_TAIL_LIMIT],
    ['port entries', addon.maxPorts, PACKET_MAX_PORTS],
    ['counter count', addon.counterCount, PACKET_COUNTER_NAMES.length],
  ];
  for (const [name, theirs, ours] of consts) if (theirs !== ours) out.push(`${name} ${theirs} != ${ours}`);
  const names = new Set([...Object.keys(addon.fields), ...Object.keys(PACKET_FIELDS)]);
  for (const name of names) {
    const ours = (PACKET_FIELDS as Record<string, { offset: number; size: number }>)[name];
    const theirs = addon.fields[name];
    if (!ours || !theirs) {
      out.push(`field ${name} only on the ${ours ? 'TypeScript' : 'addon'} side`);
    } else if (ours.offset !== theirs.offset || ours.size !== theirs.size) {
      out.push(`field ${name} at ${theirs.offset}/${theirs.size}, decoder expects ${ours.offset}/${ours.size}`);
    }
  }
  return out;
}

export function checkPacketLayout(addon: PacketAddonLayout): void {
  const bad = packetLayoutMismatches(addon);
  if (bad.length > 0) {
    throw new Error(`packet record layout mismatch between addon and decoder (rebuild both): ${bad.join('; ')}`);
  }
}
