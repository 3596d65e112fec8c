import { formatIpv4, formatIpv6 } from '../util/ip';
import { EVENT_FIELDS as F, EVENT_HEADER_SIZE, EventDir, EventKind } from './layout';

/** One decoded ring-buffer event. `payload` is a view into the batch (no copy). */
export interface CaptureEvent {
  kind: EventKind;
  dir: EventDir;
  /** ns, CLOCK_MONOTONIC, at syscall exit */
  tsNs: number;
  /** ns, CLOCK_MONOTONIC, at syscall enter */
  enterNs: number;
  /** cgroup v2 id (kernfs inode number: exact, as those stay below 2^53) */
  cgroupId: number;
  /** socket inode: identity of this end of the connection */
  sockId: number;
  tgid: number;
  tid: number;
  ppid: number;
  uid: number;
  /** bytes the syscall really moved */
  len: number;
  /** TCP sequence number of the first byte (u32) */
  seq: number;
  fd: number;
  family: 4 | 6;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  source: number;
  comm: string;
  netns: number;
  /** The first bytes of the data (len may be longer: the rest is a gap, then the tail). */
  payload: Buffer;
  /** The last bytes of the data when it was longer than the head (else empty). */
  tail: Buffer;
}

const TWO_32 = 4294967296;
/** Bytes of the task name field (TASK_COMM_LEN). */
const COMM_SIZE = F.comm.size;
// commAt compares the name as four 32-bit words
if (COMM_SIZE !== 16) throw new Error(`comm is ${COMM_SIZE} bytes in the layout; events.ts reads 16`);

// Fields are read through a DataView of the batch, not with Buffer's readUInt32LE:
// its reads compile to plain loads, where the method's load was a generic
// inline-cache call in the optimised code and its calls were not inlined (`perf`);
// 9–14% less pipeline CPU (bench/pipeline's recording, two runs of 20 alternating processes)
function u64(dv: DataView, at: number): number {
  return dv.getUint32(at + 4, true) * TWO_32 + dv.getUint32(at, true);
}

// Events repeat a few addresses and task names: their text is cached (bounded),
// decoding an event then allocates the event and its two buffer views only.
const TEXT_CACHE_MAX = 4096;
const v4Text = new Map<number, string>();

function ipv4At(buf: Buffer, dv: DataView, at: number): string {
  const key = dv.getUint32(at, true);
  let text = v4Text.get(key);
  if (text === undefined) {
    if (v4Text.size >= TEXT_CACHE_MAX) v4Text.clear();
    text = formatIpv4(buf, at);
    v4Text.set(key, text);
  }
  return text;
}

/** A v4-mapped IPv6 address (::ffff:a.b.c.d) is given as its IPv4 address. */
function ipv6At(buf: Buffer, dv: DataView, at: number): string {
  if (dv.getUint32(at, true) === 0 && dv.getUint32(at + 4, true) === 0 && dv.getUint32(at + 8, true) === 0xffff0000) return ipv4At(buf, dv, at + 12);
  return formatIpv6(buf, at);
}

/** The last task name decoded per tid, with its 16 bytes as four words (a thread's name rarely changes). */
interface CommEntry {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  text: string;
}
const commByTid = new Map<number, CommEntry>();

/**
 * The task name: NUL-terminated, at most 16 bytes. Events of a thread repeat
 * its name: the decoded text is reused while the bytes are the same.
 */
function commAt(buf: Buffer, dv: DataView, at: number, tid: number): string {
  const w0 = dv.getUint32(at, true);
  const w1 = dv.getUint32(at + 4, true);
  const w2 = dv.getUint32(at + 8, true);
  const w3 = dv.getUint32(at + 12, true);
  const known = commByTid.get(tid);
  if (known !== undefined && known.w0 === w0 && known.w1 === w1 && known.w2 === w2 && known.w3 === w3) return known.text;
  let end = at;
  while (end < at + COMM_SIZE && buf[end] !== 0) end++;
  const text = buf.toString('utf8', at, end);
  if (commByTid.size >= TEXT_CACHE_MAX) commByTid.clear();
  commByTid.set(tid, { w0, w1, w2, w3, text });
  return text;
}

// The layout's offsets, read once: decodeBatch reads ~20 fields an event, and each
// `F.x.offset` is three property loads through the layout module's exports
const HEADER = EVENT_HEADER_SIZE;
const O_CAP_LEN = F.cap_len.offset;
const O_CGROUP_ID = F.cgroup_id.offset;
const O_COMM = F.comm.offset;
const O_DADDR = F.daddr.offset;
const O_DIR = F.dir.offset;
const O_DPORT = F.dport.offset;
const O_ENTER_NS = F.enter_ns.offset;
const O_FAMILY = F.family.offset;
const O_FD = F.fd.offset;
const O_KIND = F.kind.offset;
const O_LEN = F.len.offset;
const O_NETNS = F.netns.offset;
const O_PPID = F.ppid.offset;
const O_SADDR = F.saddr.offset;
const O_SEQ = F.seq.offset;
const O_SOCK_ID = F.sock_id.offset;
const O_SOURCE = F.source.offset;
const O_SPORT = F.sport.offset;
const O_TAIL_LEN = F.tail_len.offset;
const O_TGID = F.tgid.offset;
const O_TID = F.tid.offset;
const O_TS_NS = F.ts_ns.offset;
const O_UID = F.uid.offset;

const EMPTY = Buffer.alloc(0);

export class BatchFormatError extends Error {}

/**
 * Decode one batch (records back to back: header + cap_len payload bytes).
 * A truncated record ends the batch with an error after the good events.
 */
export function decodeBatch(batch: Buffer, onEvent: (event: CaptureEvent) => void): void {
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < HEADER) {
      throw new BatchFormatError(`batch ends inside an event header at byte ${at}`);
    }
    const capLen = dv.getUint32(at + O_CAP_LEN, true);
    const tailLen = dv.getUint32(at + O_TAIL_LEN, true);
    const end = at + HEADER + capLen;
    if (end > batch.length) throw new BatchFormatError(`event at byte ${at} runs past the batch`);
    if (tailLen > capLen) throw new BatchFormatError(`event at byte ${at} has a tail longer than its payload`);
    const tid = dv.getUint32(at + O_TID, true);
    const payloadEnd = end - tailLen;
    const familyRaw = batch[at + O_FAMILY];
    const family = familyRaw === 10 ? 6 : 4;
    const v6 = family === 6;
    onEvent({
      kind: batch[at + O_KIND] as EventKind,
      dir: batch[at + O_DIR] as EventDir,
      tsNs: u64(dv, at + O_TS_NS),
      enterNs: u64(dv, at + O_ENTER_NS),
      cgroupId: u64(dv, at + O_CGROUP_ID),
      sockId: u64(dv, at + O_SOCK_ID),
      tgid: dv.getUint32(at + O_TGID, true),
      tid,
      ppid: dv.getUint32(at + O_PPID, true),
      uid: dv.getUint32(at + O_UID, true),
      len: dv.getUint32(at + O_LEN, true),
      seq: dv.getUint32(at + O_SEQ, true),
      fd: dv.getUint32(at + O_FD, true),
      family,
      localIp: v6 ? ipv6At(batch, dv, at + O_SADDR) : ipv4At(batch, dv, at + O_SADDR),
      localPort: dv.getUint16(at + O_SPORT, true),
      remoteIp: v6 ? ipv6At(batch, dv, at + O_DADDR) : ipv4At(batch, dv, at + O_DADDR),
      remotePort: dv.getUint16(at + O_DPORT, true),
      source: batch[at + O_SOURCE],
      comm: commAt(batch, dv, at + O_COMM, tid),
      netns: dv.getUint32(at + O_NETNS, true),
      // payload-less events (a shadowed socket's) and tail-less ones share one empty buffer
      payload: payloadEnd > at + HEADER ? batch.subarray(at + HEADER, payloadEnd) : EMPTY,
      tail: tailLen > 0 ? batch.subarray(payloadEnd, end) : EMPTY,
    });
    at = end;
  }
}

/** Encode an event the way the kernel does (tests and recorded streams). */
export function encodeEvent(e: Omit<CaptureEvent, 'localIp' | 'remoteIp'> & { localAddr: Buffer; remoteAddr: Buffer }): Buffer {
  const b = Buffer.alloc(EVENT_HEADER_SIZE + e.payload.length + e.tail.length);
  const w64 = (at: number, v: number) => {
    b.writeUInt32LE(v % TWO_32, at);
    b.writeUInt32LE(Math.floor(v / TWO_32), at + 4);
  };
  w64(F.ts_ns.offset, e.tsNs);
  w64(F.enter_ns.offset, e.enterNs);
  w64(F.cgroup_id.offset, e.cgroupId);
  w64(F.sock_id.offset, e.sockId);
  b.writeUInt32LE(e.tgid, F.tgid.offset);
  b.writeUInt32LE(e.tid, F.tid.offset);
  b.writeUInt32LE(e.ppid, F.ppid.offset);
  b.writeUInt32LE(e.uid, F.uid.offset);
  b.writeUInt32LE(e.len, F.len.offset);
  b.writeUInt32LE(e.payload.length + e.tail.length, F.cap_len.offset);
  b.writeUInt32LE(e.tail.length, F.tail_len.offset);
  b.writeUInt32LE(e.seq >>> 0, F.seq.offset);
  b.writeUInt32LE(e.fd, F.fd.offset);
  e.localAddr.copy(b, F.saddr.offset, 0, 16);
  e.remoteAddr.copy(b, F.daddr.offset, 0, 16);
  b.writeUInt16LE(e.localPort, F.sport.offset);
  b.writeUInt16LE(e.remotePort, F.dport.offset);
  b[F.kind.offset] = e.kind;
  b[F.dir.offset] = e.dir;
  b[F.family.offset] = e.family === 6 ? 10 : 2;
  b[F.source.offset] = e.source;
  b.write(e.comm.slice(0, 15), F.comm.offset, 'utf8');
  b.writeUInt32LE(e.netns, F.netns.offset);
  e.payload.copy(b, EVENT_HEADER_SIZE);
  e.tail.copy(b, EVENT_HEADER_SIZE + e.payload.length);
  return b;
}
