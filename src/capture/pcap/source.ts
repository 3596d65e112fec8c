import type { CaptureEvent } from '../events';
import { COUNTER_NAMES, EventDir, EventKind, type KernelCounters } from '../layout';
import type { CaptureSink, CaptureSource } from '../source';
import { readCapture, type CapturedPacket } from './file';
import { decodeTcp, TCP_FIN, TCP_RST, TCP_SYN, TCP_ACK, type TcpSegment } from './packet';

/**
 * Packets → the same typed events the kernel produces, one synthetic "server
 * socket" per TCP flow, so replay runs the very pipeline live capture runs.
 * TCP reassembly: retransmissions and overlaps are trimmed, out-of-order
 * segments are held until the hole fills (bounded), and what never arrives is
 * a gap the parsers skip.
 */
export interface PcapSourceOptions {
  /** Is this port a server port of some protocol? Decides which end serves. */
  isServerPort: (port: number) => boolean;
  /** Keep flows of unknown ports too (the pipeline recognises protocols by content). */
  inferUnknown?: boolean;
  /** Segments held per direction while waiting for a hole to fill. */
  maxHeldSegments?: number;
  /** Bytes held per direction while waiting for a hole to fill. */
  maxHeldBytes?: number;
  /** Called with the capture time (ns since the first packet) as it advances. */
  onTime?: (relNs: number) => void;
}

interface Held {
  seq: number;
  seg: TcpSegment;
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

interface Flow {
  sockId: number;
  server: { ip: string; port: number };
  client: { ip: string; port: number };
  family: 4 | 6;
  /** [client→server, server→client] */
  dirs: [Direction, Direction];
  closed: boolean;
}

export interface PcapStats {
  packets: number;
  tcpSegments: number;
  notTcp: number;
  retransmittedBytes: number;
  reordered: number;
  /** Bytes never captured (holes given up on, snaplen cuts). */
  missingBytes: number;
  ignoredFlows: number;
}

const HALF = 0x80000000;
const seqAfter = (a: number, b: number) => ((a - b) >>> 0) !== 0 && ((a - b) >>> 0) < HALF;

export interface PcapSource extends CaptureSource {
  /** Capture time of the first packet (for @timestamp): seconds and ns. */
  readonly base: { sec: number; nsec: number };
  stats(): PcapStats;
}

export function createPcapSource(file: Buffer, options: PcapSourceOptions): PcapSource {
  const { isServerPort, inferUnknown = false, maxHeldSegments = 512, maxHeldBytes = 8 * 1024 * 1024, onTime } = options;
  const flows = new Map<string, Flow>();
  const stats: PcapStats = { packets: 0, tcpSegments: 0, notTcp: 0, retransmittedBytes: 0, reordered: 0, missingBytes: 0, ignoredFlows: 0 };
  const ignored = new Set<string>();
  const base = { sec: -1, nsec: 0 };
  let nextSock = 1;
  let events = 0;
  let sink: CaptureSink | undefined;

  function emit(f: Flow, kind: EventKind, dir: EventDir, seq: number, len: number, payload: Buffer, tsNs: number): void {
    events++;
    const e: CaptureEvent = {
      kind,
      dir,
      tsNs,
      enterNs: tsNs,
      cgroupId: 0n,
      sockId: f.sockId,
      tgid: 0,
      tid: 0,
      ppid: 0,
      uid: 0,
      len,
      seq: seq >>> 0,
      fd: 0,
      family: f.family,
      localIp: f.server.ip,
      localPort: f.server.port,
      remoteIp: f.client.ip,
      remotePort: f.client.port,
      source: 0,
      comm: '',
      netns: 0,
      payload,
      tail: EMPTY,
    };
    sink!.onEvent(e);
  }

  function deliver(f: Flow, d: 0 | 1, h: Held): void {
    const dir = f.dirs[d];
    let seq = h.seq;
    let payload = h.seg.payload;
    let len = h.seg.payloadLen;
    if (dir.next !== undefined && !seqAfter(seq, dir.next) && seq !== dir.next) {
      // starts before what was delivered: a retransmission or an overlap
      const behind = (dir.next - seq) >>> 0;
      stats.retransmittedBytes += Math.min(behind, len);
      if (behind >= len) return;
      payload = payload.subarray(Math.min(behind, payload.length));
      len -= behind;
      seq = dir.next;
    } else if (dir.next !== undefined && seq !== dir.next) {
      stats.missingBytes += (seq - dir.next) >>> 0; // a hole given up on: the pipeline sees the jump
    }
    if (payload.length < len) stats.missingBytes += len - payload.length;
    emit(f, EventKind.DATA, d === 0 ? EventDir.INGRESS : EventDir.EGRESS, seq, len, payload, h.tsNs);
    dir.next = (seq + len) >>> 0;
  }

  /** Deliver held segments that are now in order (or all of them, when giving up). */
  function drain(f: Flow, d: 0 | 1, all: boolean): void {
    const dir = f.dirs[d];
    dir.held.sort((a, b) => ((a.seq - (dir.next ?? a.seq)) >>> 0) - ((b.seq - (dir.next ?? b.seq)) >>> 0));
    while (dir.held.length > 0) {
      const h = dir.held[0];
      if (!all && dir.next !== undefined && seqAfter(h.seq, dir.next) && dir.heldBytes <= maxHeldBytes && dir.held.length <= maxHeldSegments) break;
      dir.held.shift();
      dir.heldBytes -= h.seg.payload.length;
      deliver(f, d, h);
    }
  }

  function flowFor(seg: TcpSegment): { flow: Flow; d: 0 | 1 } | undefined {
    const fwd = `${seg.srcIp}|${seg.srcPort}|${seg.dstIp}|${seg.dstPort}`;
    const rev = `${seg.dstIp}|${seg.dstPort}|${seg.srcIp}|${seg.srcPort}`;
    let flow = flows.get(fwd);
    if (flow) return { flow, d: flow.client.port === seg.srcPort && flow.client.ip === seg.srcIp ? 0 : 1 };
    flow = flows.get(rev);
    if (flow) return { flow, d: flow.client.port === seg.srcPort && flow.client.ip === seg.srcIp ? 0 : 1 };
    if (ignored.has(fwd) || ignored.has(rev)) return undefined;
    // who serves: the SYN's receiver, else the end on a configured port
    const syn = (seg.flags & TCP_SYN) !== 0;
    let srcIsServer: boolean;
    if (syn) srcIsServer = (seg.flags & TCP_ACK) !== 0;
    else if (isServerPort(seg.dstPort)) srcIsServer = false;
    else if (isServerPort(seg.srcPort)) srcIsServer = true;
    else if (inferUnknown) srcIsServer = seg.srcPort < seg.dstPort; // servers usually listen on the lower port
    else {
      ignored.add(fwd);
      stats.ignoredFlows++;
      return undefined;
    }
    const a = { ip: seg.srcIp, port: seg.srcPort };
    const b = { ip: seg.dstIp, port: seg.dstPort };
    const server = srcIsServer ? a : b;
    if (!isServerPort(server.port) && !inferUnknown) {
      ignored.add(fwd);
      stats.ignoredFlows++;
      return undefined;
    }
    flow = {
      sockId: nextSock++,
      server,
      client: srcIsServer ? b : a,
      family: seg.family,
      dirs: [
        { held: [], heldBytes: 0, fin: false },
        { held: [], heldBytes: 0, fin: false },
      ],
      closed: false,
    };
    flows.set(fwd, flow);
    return { flow, d: srcIsServer ? 1 : 0 };
  }

  function close(f: Flow, tsNs: number): void {
    if (f.closed) return;
    drain(f, 0, true);
    drain(f, 1, true);
    f.closed = true;
    emit(f, EventKind.CLOSE, EventDir.EGRESS, 0, 0, EMPTY, tsNs);
    // the flow stays known, closed: late duplicates and retransmissions of it are dropped
  }

  function onPacket(p: CapturedPacket): void {
    stats.packets++;
    if (base.sec < 0) {
      base.sec = p.tsSec;
      base.nsec = p.tsNsec;
    }
    const tsNs = (p.tsSec - base.sec) * 1e9 + (p.tsNsec - base.nsec);
    onTime?.(tsNs);
    const seg = decodeTcp(p.linktype, p.data);
    if (!seg) {
      stats.notTcp++;
      return;
    }
    stats.tcpSegments++;
    let found = flowFor(seg);
    if (!found) return;
    if (found.flow.closed) {
      // a new connection on the same ports starts with a SYN of another ISN; all else is stale
      const fresh = (seg.flags & TCP_SYN) !== 0 && !(seg.flags & TCP_ACK) && seg.seq !== found.flow.dirs[0].isn;
      if (!fresh) {
        stats.retransmittedBytes += seg.payloadLen;
        return;
      }
      for (const [k, v] of flows) if (v === found.flow) flows.delete(k);
      found = flowFor(seg);
      if (!found) return;
    }
    const { flow, d } = found;
    const dir = flow.dirs[d];
    if (seg.flags & TCP_SYN) {
      if (dir.next === undefined) {
        dir.isn = seg.seq;
        dir.next = (seg.seq + 1) >>> 0;
        // the server's view of a new connection: the client's first byte is next
        if (d === 0) emit(flow, EventKind.ACCEPT, EventDir.INGRESS, dir.next, 0, EMPTY, tsNs);
      }
      return;
    }
    if (seg.payloadLen > 0) {
      if (dir.next === undefined || seg.seq === dir.next) {
        deliver(flow, d, { seq: seg.seq, seg, tsNs });
        drain(flow, d, false);
      } else if (seqAfter(seg.seq, dir.next)) {
        stats.reordered++;
        dir.held.push({ seq: seg.seq, seg, tsNs });
        dir.heldBytes += seg.payload.length;
        drain(flow, d, false); // gives up on the hole past the bounds
      } else {
        deliver(flow, d, { seq: seg.seq, seg, tsNs }); // trimmed (retransmission)
      }
    }
    if (seg.flags & (TCP_FIN | TCP_RST)) {
      dir.fin = true;
      drain(flow, d, true);
      // the client is done sending: the server reads end of stream
      if (d === 0 && !(seg.flags & TCP_RST)) emit(flow, EventKind.DATA, EventDir.INGRESS, dir.next ?? seg.seq, 0, EMPTY, tsNs);
      if (seg.flags & TCP_RST || (flow.dirs[0].fin && flow.dirs[1].fin) || d === 1) close(flow, tsNs);
    }
  }

  return {
    mode: 'pcap',
    base,
    start(s) {
      sink = s;
      let n = 0;
      for (const p of readCapture(file)) {
        onPacket(p);
        if (++n % 256 === 0) s.onBatchEnd();
      }
      for (const f of new Set(flows.values())) {
        drain(f, 0, true);
        drain(f, 1, true);
      }
      s.onBatchEnd();
    },
    flush() {},
    counters(): KernelCounters {
      const c = Object.fromEntries(COUNTER_NAMES.map((k) => [k, 0])) as KernelCounters;
      c.events = events;
      return c;
    },
    close() {},
    stats: () => ({ ...stats }),
  };
}

const EMPTY = Buffer.alloc(0);
