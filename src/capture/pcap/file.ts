/**
 * Reader of classic pcap (µs and ns magics, both byte orders) and pcapng
 * (SHB, IDB with if_tsresol, EPB, SPB) capture files.
 */

export interface CapturedPacket {
  /** Capture time: seconds since the Unix epoch, and nanoseconds within it. */
  tsSec: number;
  tsNsec: number;
  /** Link type (LINKTYPE_*) of the interface it was captured on. */
  linktype: number;
  /** The captured bytes (may be shorter than the packet on the wire). */
  data: Buffer;
  /** Length of the packet on the wire. */
  origLen: number;
}

export class CaptureFileError extends Error {}

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;

function* readPcap(buf: Buffer): Generator<CapturedPacket> {
  const magicLE = buf.readUInt32LE(0);
  const le = magicLE === PCAP_US || magicLE === PCAP_NS;
  const magic = le ? magicLE : buf.readUInt32BE(0);
  const nanos = magic === PCAP_NS;
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  if (buf.length < 24) throw new CaptureFileError('pcap file header is truncated');
  const linktype = u32(20) & 0x0fffffff;
  let at = 24;
  while (at < buf.length) {
    if (at + 16 > buf.length) throw new CaptureFileError(`pcap record header truncated at byte ${at}`);
    const sec = u32(at);
    const frac = u32(at + 4);
    const incl = u32(at + 8);
    const orig = u32(at + 12);
    if (at + 16 + incl > buf.length) throw new CaptureFileError(`pcap record at byte ${at} runs past the end of the file`);
    yield { tsSec: sec, tsNsec: nanos ? frac : frac * 1000, linktype, data: buf.subarray(at + 16, at + 16 + incl), origLen: orig };
    at += 16 + incl;
  }
}

interface Interface {
  linktype: number;
  /** ns per timestamp unit */
  unitNs: number;
}

function tsResolution(opts: Buffer, le: boolean): number {
  // options: code(2) len(2) value(padded to 4); if_tsresol is code 9
  let at = 0;
  while (at + 4 <= opts.length) {
    const code = le ? opts.readUInt16LE(at) : opts.readUInt16BE(at);
    const len = le ? opts.readUInt16LE(at + 2) : opts.readUInt16BE(at + 2);
    if (code === 0) break;
    if (code === 9 && len >= 1) {
      const v = opts[at + 4];
      const exp = v & 0x7f;
      // seconds per unit = 10^-exp or 2^-exp; as ns per unit
      return v & 0x80 ? 1e9 / 2 ** exp : 10 ** (9 - exp);
    }
    at += 4 + ((len + 3) & ~3);
  }
  return 1000; // default: microseconds
}

function* readPcapng(buf: Buffer): Generator<CapturedPacket> {
  let at = 0;
  let le = true;
  let interfaces: Interface[] = [];
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new CaptureFileError(`pcapng block truncated at byte ${at}`);
    let type = buf.readUInt32LE(at);
    if (type === PCAPNG_SHB) {
      const bom = buf.readUInt32LE(at + 8);
      if (bom === PCAPNG_BOM) le = true;
      else if (buf.readUInt32BE(at + 8) === PCAPNG_BOM) le = false;
      else throw new CaptureFileError(`pcapng section at byte ${at} has a bad byte-order magic`);
      interfaces = [];
    } else if (!le) {
      type = buf.readUInt32BE(at);
    }
    const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const len = u32(at + 4);
    if (len < 12 || len % 4 !== 0 || at + len > buf.length) throw new CaptureFileError(`pcapng block at byte ${at} has a bad length ${len}`);
    const body = buf.subarray(at + 8, at + len - 4);
    if (type === 1) {
      // Interface Description Block: linktype(2) reserved(2) snaplen(4) options
      const linktype = le ? body.readUInt16LE(0) : body.readUInt16BE(0);
      interfaces.push({ linktype, unitNs: tsResolution(body.subarray(8), le) });
    } else if (type === 6) {
      // Enhanced Packet Block: if(4) tsHigh(4) tsLow(4) caplen(4) origlen(4) data
      const iface = interfaces[u32(at + 8)];
      if (!iface) throw new CaptureFileError(`pcapng packet at byte ${at} names an unknown interface`);
      const units = (BigInt(u32(at + 12)) << 32n) | BigInt(u32(at + 16));
      const ns = Number.isInteger(iface.unitNs) ? units * BigInt(iface.unitNs) : BigInt(Math.round(Number(units) * iface.unitNs));
      const caplen = u32(at + 20);
      if (28 + caplen > len) throw new CaptureFileError(`pcapng packet at byte ${at} runs past its block`);
      yield { tsSec: Number(ns / 1_000_000_000n), tsNsec: Number(ns % 1_000_000_000n), linktype: iface.linktype, data: buf.subarray(at + 28, at + 28 + caplen), origLen: u32(at + 24) };
    } else if (type === 3) {
      // Simple Packet Block: origlen(4) data (no timestamp)
      const iface = interfaces[0];
      if (!iface) throw new CaptureFileError(`pcapng simple packet at byte ${at} before any interface`);
      const orig = u32(at + 8);
      yield { tsSec: 0, tsNsec: 0, linktype: iface.linktype, data: buf.subarray(at + 12, at + 12 + Math.min(orig, len - 16)), origLen: orig };
    }
    at += len;
  }
}

/** Packets of a pcap or pcapng capture held in memory. */
export function readCapture(buf: Buffer): Generator<CapturedPacket> {
  if (buf.length < 4) throw new CaptureFileError('not a capture file: too short');
  const m = buf.readUInt32LE(0);
  const mb = buf.readUInt32BE(0);
  if (m === PCAP_US || m === PCAP_NS || mb === PCAP_US || mb === PCAP_NS) return readPcap(buf);
  if (m === PCAPNG_SHB) return readPcapng(buf);
  throw new CaptureFileError('not a pcap or pcapng file (unknown magic number)');
}
