import { EventDir, EventKind } from '../layout';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from './packet';

/**
 * TCP reassembly of captured segments into the byte streams of each flow, as
 * the server's socket would have read and written them: retransmissions and
 * overlaps are trimmed, out-of-order segments are held until the hole fills
 * (bounded), and what never arrives is a gap the parsers skip. Used by
 * `replay` (pcap files) and by the `packet` capture mode (AF_PACKET).
 */

/** One end of a flow. */
export interface Endpoint {
  ip: string;
  port: number;
}

/** A TCP connection as seen on the wire. */
export interface ReassembledFlow {
  /** Unique per flow (a new connection on the same ports gets a new id). */
  readonly id: number;
  readonly family: 4 | 6;
  readonly server: Endpoint;
  readonly client: Endpoint;
}

/**
 * What the server's socket would have seen: ACCEPT (seq: the client's first
 * byte), DATA (INGRESS: from the client, EGRESS: to it; len 0 INGRESS: the
 * client finished sending), CLOSE.
 */
export interface FlowEvent {
  kind: EventKind;
  dir: EventDir;
  seq: number;
  /** Bytes the event stands for (payload + gap + tail). */
  len: number;
  /** The first bytes (the rest of len may be a gap, then the tail). */
  payload: Buffer;
  /** The last bytes when the segment's middle was not captured (else empty). */
  tail: Buffer;
  tsNs: number;
}

export interface ReassemblyStats {
  tcpSegments: number;
  retransmittedBytes: number;
  reordered: number;
  /** Bytes never captured (holes given up on, snaplen/head cuts). */
  missingBytes: number;
  ignoredFlows: number;
  /** Flows forgotten to stay within maxFlows. */
  evictedFlows: number;
}

export interface ReassemblerOptions {
  /** Is this port a server port of some protocol? Decides which end serves. */
  isServerPort: (port: number) => boolean;
  /** Keep flows of unknown ports too (the pipeline recognises protocols by content). */
  inferUnknown?: boolean;
  /** Segments held per direction while waiting for a hole to fill. */
  maxHeldSegments?: number;
  /** Bytes held per direction while waiting for a hole to fill. */
  maxHeldBytes?: number;
  /** Flows tracked at once (the oldest is closed and forgotten past it). */
  maxFlows?: number;
  /** Every event of every flow, in order. */
  onEvent: (flow: ReassembledFlow, event: FlowEvent) => void;
}

export interface TcpReassembler {
  /** One captured segment; `tail` holds the segment's last bytes when its middle was not captured. */
  segment(seg: TcpSegment, tsNs: number, tail?: Buffer): void;
  /** Deliver everything held (end of the capture). */
  flush(): void;
  /**
   * Forget flows not seen since `idleBeforeNs` (open ones are closed first)
   * and closed flows not seen since `closedBeforeNs` (they are kept a while so
   * that late duplicates are recognised).
   */
  sweep(idleBeforeNs: number, closedBeforeNs: number): void;
  stats(): ReassemblyStats;
  /** Flows tracked now. */
  size(): number;
}

interface Held {
  seq: number;
  payload: Buffer;
  tail: Buffer;
  len: number;
  tsNs: number;
}

interface Direction {
  /** Initial sequence number, when the SYN was seen. */
  isn?: number;
  next?: number;
  held: Held[];
  heldBytes: number;
  fin: boolean;
}

interface Flow extends ReassembledFlow {
  key: string;
  /** [client→server, server→client] */
  dirs: [Direction, Direction];
  closed: boolean;
  lastNs: number;
}

const HALF = 0x80000000;
const seqAfter = (a: number, b: number) => ((a - b) >>> 0) !== 0 && ((a - b) >>> 0) < HALF;
const EMPTY = Buffer.alloc(0);

/** Drop the first `n` bytes of head + gap + tail. */
function trimFront(h: Held, n: number): void {
  const middle = h.len - h.payload.length - h.tail.length;
  const cutHead = Math.min(n, h.payload.length);
  const cutTail = Math.max(0, n - h.payload.length - middle);
  h.payload = h.payload.subarray(cutHead);
  h.tail = h.tail.subarray(Math.min(cutTail, h.tail.length));
  h.len -= n;
  h.seq = (h.seq + n) >>> 0;
}

export function createTcpReassembler(options: ReassemblerOptions): TcpReassembler {
  const {
    isServerPort,
    inferUnknown = false,
    maxHeldSegments = 512,
    maxHeldBytes = 8 * 1024 * 1024,
    maxFlows = Number.POSITIVE_INFINITY,
    onEvent,
  } = options;
  // one key per flow (client→server tuple); looked up both ways
  const flows = new Map<string, Flow>();
  const ignored = new Set<string>();
  const stats: ReassemblyStats = { tcpSegments: 0, retransmittedBytes: 0, reordered: 0, missingBytes: 0, ignoredFlows: 0, evictedFlows: 0 };
  let nextId = 1;

  function emit(f: Flow, kind: EventKind, dir: EventDir, seq: number, len: number, payload: Buffer, tail: Buffer, tsNs: number): void {
    onEvent(f, { kind, dir, seq: seq >>> 0, len, payload, tail, tsNs });
  }

  function deliver(f: Flow, d: 0 | 1, h: Held): void {
    const dir = f.dirs[d];
    if (dir.next !== undefined && !seqAfter(h.seq, dir.next) && h.seq !== dir.next) {
      // starts before what was delivered: a retransmission or an overlap
      const behind = (dir.next - h.seq) >>> 0;
      stats.retransmittedBytes += Math.min(behind, h.len);
      if (behind >= h.len) return;
      trimFront(h, behind);
    } else if (dir.next !== undefined && h.seq !== dir.next) {
      stats.missingBytes += (h.seq - dir.next) >>> 0; // a hole given up on: the pipeline sees the jump
    }
    const captured = h.payload.length + h.tail.length;
    if (captured < h.len) stats.missingBytes += h.len - captured;
    emit(f, EventKind.DATA, d === 0 ? EventDir.INGRESS : EventDir.EGRESS, h.seq, h.len, h.payload, h.tail, h.tsNs);
    dir.next = (h.seq + h.len) >>> 0;
  }

  /** Deliver held segments that are now in order (or all of them, when giving up). */
  function drain(f: Flow, d: 0 | 1, all: boolean): void {
    const dir = f.dirs[d];
    dir.held.sort((a, b) => ((a.seq - (dir.next ?? a.seq)) >>> 0) - ((b.seq - (dir.next ?? b.seq)) >>> 0));
    while (dir.held.length > 0) {
      const h = dir.held[0];
      if (!all && dir.next !== undefined && seqAfter(h.seq, dir.next) && dir.heldBytes <= maxHeldBytes && dir.held.length <= maxHeldSegments) break;
      dir.held.shift();
      dir.heldBytes -= h.payload.length + h.tail.length;
      deliver(f, d, h);
    }
  }

  function ignore(key: string): undefined {
    if (ignored.size >= Math.min(maxFlows, 1 << 20)) ignored.clear();
    ignored.add(key);
    stats.ignoredFlows++;
    return undefined;
  }

  function flowFor(seg: TcpSegment, tsNs: number): { flow: Flow; d: 0 | 1 } | undefined {
    const fwd = `${seg.srcIp}|${seg.srcPort}|${seg.dstIp}|${seg.dstPort}`;
    const rev = `${seg.dstIp}|${seg.dstPort}|${seg.srcIp}|${seg.srcPort}`;
    let flow = flows.get(fwd) ?? flows.get(rev);
    if (flow) return { flow, d: flow.client.port === seg.srcPort && flow.client.ip === seg.srcIp ? 0 : 1 };
    if (ignored.has(fwd) || ignored.has(rev)) return undefined;
    // who serves: the SYN's receiver, else the end on a configured port
    const syn = (seg.flags & TCP_SYN) !== 0;
    let srcIsServer: boolean;
    if (syn) srcIsServer = (seg.flags & TCP_ACK) !== 0;
    else if (isServerPort(seg.dstPort)) srcIsServer = false;
    else if (isServerPort(seg.srcPort)) srcIsServer = true;
    else if (inferUnknown) srcIsServer = seg.srcPort < seg.dstPort; // servers usually listen on the lower port
    else return ignore(fwd);
    const a = { ip: seg.srcIp, port: seg.srcPort };
    const b = { ip: seg.dstIp, port: seg.dstPort };
    const server = srcIsServer ? a : b;
    if (!isServerPort(server.port) && !inferUnknown) return ignore(fwd);
    if (flows.size >= maxFlows) evictOldest();
    const key = srcIsServer ? rev : fwd;
    flow = {
      id: nextId++,
      key,
      server,
      client: srcIsServer ? b : a,
      family: seg.family,
      dirs: [
        { held: [], heldBytes: 0, fin: false },
        { held: [], heldBytes: 0, fin: false },
      ],
      closed: false,
      lastNs: tsNs,
    };
    flows.set(key, flow);
    return { flow, d: srcIsServer ? 1 : 0 };
  }

  function close(f: Flow, tsNs: number): void {
    if (f.closed) return;
    drain(f, 0, true);
    drain(f, 1, true);
    f.closed = true;
    emit(f, EventKind.CLOSE, EventDir.EGRESS, 0, 0, EMPTY, EMPTY, tsNs);
    // the flow stays known, closed: late duplicates and retransmissions of it are dropped
  }

  function forget(f: Flow): void {
    if (!f.closed) close(f, f.lastNs);
    if (flows.get(f.key) === f) flows.delete(f.key);
  }

  function evictOldest(): void {
    const oldest = flows.values().next();
    if (oldest.done) return;
    stats.evictedFlows++;
    forget(oldest.value);
  }

  function segment(seg: TcpSegment, tsNs: number, tailIn?: Buffer): void {
    stats.tcpSegments++;
    let found = flowFor(seg, tsNs);
    if (!found) return;
    if (found.flow.closed) {
      // a new connection on the same ports starts with a SYN of another ISN; all else is stale
      const fresh = (seg.flags & TCP_SYN) !== 0 && !(seg.flags & TCP_ACK) && seg.seq !== found.flow.dirs[0].isn;
      if (!fresh) {
        stats.retransmittedBytes += seg.payloadLen;
        return;
      }
      flows.delete(found.flow.key);
      found = flowFor(seg, tsNs);
      if (!found) return;
    }
    const { flow, d } = found;
    flow.lastNs = tsNs;
    const dir = flow.dirs[d];
    if (seg.flags & TCP_SYN) {
      if (dir.next === undefined) {
        dir.isn = seg.seq;
        dir.next = (seg.seq + 1) >>> 0;
        // the server's view of a new connection: the client's first byte is next
        if (d === 0) emit(flow, EventKind.ACCEPT, EventDir.INGRESS, dir.next, 0, EMPTY, EMPTY, tsNs);
      }
      return;
    }
    if (seg.payloadLen > 0) {
      const tail = tailIn && seg.payload.length + tailIn.length <= seg.payloadLen ? tailIn : EMPTY;
      const h: Held = { seq: seg.seq, payload: seg.payload, tail, len: seg.payloadLen, tsNs };
      if (dir.next === undefined || seg.seq === dir.next) {
        deliver(flow, d, h);
        drain(flow, d, false);
      } else if (seqAfter(seg.seq, dir.next)) {
        stats.reordered++;
        // held past this call: copies, so that the capture's buffer is not kept alive
        h.payload = Buffer.from(h.payload);
        h.tail = Buffer.from(h.tail);
        dir.held.push(h);
        dir.heldBytes += h.payload.length + h.tail.length;
        drain(flow, d, false); // gives up on the hole past the bounds
      } else {
        deliver(flow, d, h); // trimmed (retransmission)
      }
    }
    if (seg.flags & (TCP_FIN | TCP_RST)) {
      dir.fin = true;
      drain(flow, d, true);
      // the client is done sending: the server reads end of stream
      if (d === 0 && !(seg.flags & TCP_RST)) emit(flow, EventKind.DATA, EventDir.INGRESS, dir.next ?? seg.seq, 0, EMPTY, EMPTY, tsNs);
      if (seg.flags & TCP_RST || (flow.dirs[0].fin && flow.dirs[1].fin) || d === 1) close(flow, tsNs);
    }
  }

  return {
    segment,
    flush() {
      for (const f of flows.values()) {
        drain(f, 0, true);
        drain(f, 1, true);
      }
    },
    sweep(idleBeforeNs, closedBeforeNs) {
      for (const f of [...flows.values()]) {
        if (f.lastNs < (f.closed ? closedBeforeNs : idleBeforeNs)) forget(f);
      }
    },
    stats: () => ({ ...stats }),
    size: () => flows.size,
  };
}
