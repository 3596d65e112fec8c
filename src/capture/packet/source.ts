import { explainNativeError, CaptureStartError } from '../ebpf-source';
import type { NativeError } from '../addon';
import type { CaptureEvent } from '../events';
import { COUNTER_NAMES, EventDir, EventKind, type KernelCounters } from '../layout';
import { decodeTcp, LINKTYPE } from '../pcap/packet';
import { createTcpReassembler, type FlowEvent, type ReassembledFlow, type ReassemblyStats } from '../pcap/reassembly';
import type { CaptureSink, CaptureSource } from '../source';
import { createSlicer } from '../slices';
import { loadPacketBinding, type NativePacketCapture, type PacketBinding } from './addon';
import type { Attribution, Attributor, AttributionStats, FlowEnds, SocketOwner } from './attribution';
import { checkPacketLayout, PACKET_COUNTER_NAMES, type PacketCounters } from './layout';
import { decodePacketBatch, type PacketRecord } from './records';

/**
 * The `packet` capture mode: TCP packets of the configured ports from an
 * AF_PACKET socket filter (bpf/packet.bpf.c), reassembled by the code replay
 * uses, then handed to the pipeline as the events of the sockets that sent
 * and received them: where an end is a socket of this host (found through
 * /proc), as that socket with its process; where neither end is, as one
 * process-less "wire" socket on the server's side, as replay does.
 */
export interface PacketSourceOptions {
  /** Ports of interest → protocol id (the kernel's port filter). */
  ports: Array<[number, number]>;
  /** Is this port a server port of some protocol? Decides which end serves. */
  isServerPort: (port: number) => boolean;
  /** Interface indexes to capture on; empty: every interface. */
  ifindexes: number[];
  maxPayload: number;
  ringBytes: number;
  wakeupBytes: number;
  drainIntervalMs: number;
  drainMinIntervalMs?: number;
  /** Names the processes of local sockets; undefined: no attribution. */
  attributor?: Attributor;
  /** The agent: flows it is an end of are never reported. */
  selfPid?: number;
  /** Report only flows with an end in one of these processes (empty: all). */
  pids?: number[];
  /** Flows tracked at once. */
  maxFlows?: number;
  /** Monotonic clock (ns), the one the kernel stamps records with. */
  monoNowNs?: () => number;
  /** Clock (ms) that measures the time attribution takes. */
  clockMs?: () => number;
  debug?: boolean;
  binding?: PacketBinding;
  onDecodeError?: (err: Error) => void;
}

export interface PacketSourceStats {
  kernel: PacketCounters;
  /** Records whose bytes are no TCP segment user space can read. */
  undecodable: number;
  reassembly: ReassemblyStats;
  attribution?: AttributionStats;
  /** Flows reported as seen on the wire only (no end attributed). */
  wireFlows: number;
  /** Flows not reported: an end is the agent, or no end is a process of `pids`. */
  skippedFlows: number;
  /** Flows not attributed because attribution had used up its share of the CPU. */
  attributionSkipped: number;
}

export interface PacketSource extends CaptureSource {
  stats(): PacketSourceStats;
}

/** Synthetic socket ids: above any socket inode (32 bits), two per flow. */
const SOCK_ID_BASE = 2 ** 40;
/** Flows without a packet for this long are forgotten (the pipeline's idle timeout). */
const IDLE_FLOW_NS = 5 * 60e9;
/** Closed flows are kept this long to recognise their late duplicates. */
const CLOSED_FLOW_NS = 30e9;
const SWEEP_EVERY_NS = 1e9;
/** Process attribution may take this share of each second; past it, new flows go unattributed. */
const ATTRIBUTION_SHARE = 0.25;
const ATTRIBUTION_WINDOW_MS = 1000;
const DEFAULT_MAX_FLOWS = 262_144;

type Side = 'client' | 'server' | 'wire';

interface FlowView {
  client?: SocketOwner;
  server?: SocketOwner;
  skipped: boolean;
}

function zeroCounters(): PacketCounters {
  return Object.fromEntries(PACKET_COUNTER_NAMES.map((n) => [n, 0])) as PacketCounters;
}

export function createPacketSource(options: PacketSourceOptions): PacketSource {
  const binding = options.binding ?? loadPacketBinding();
  checkPacketLayout(binding.layout);
  const { attributor, selfPid = process.pid, pids = [], monoNowNs = () => Number(process.hrtime.bigint()), clockMs = () => performance.now() } = options;
  const wanted = new Set(pids);
  let native: NativePacketCapture;
  try {
    native = new binding.PacketCapture({
      maxPayload: options.maxPayload,
      wakeupBytes: options.wakeupBytes,
      ringBytes: options.ringBytes,
      debug: options.debug ?? false,
    });
  } catch (err) {
    throw explainPacketError(err as NativeError);
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    native.close();
    attributor?.close();
  };
  try {
    native.setPorts(options.ports);
    native.attach(options.ifindexes);
  } catch (err) {
    close();
    throw explainPacketError(err as NativeError);
  }

  const views = new Map<number, FlowView>();
  let sink: CaptureSink | undefined;
  let undecodable = 0;
  let wireFlows = 0;
  let skippedFlows = 0;
  let lastSweepNs = monoNowNs();
  let lastCounters = zeroCounters();

  /** Attribution within its CPU share (a flood of new connections must not stall the capture). */
  let windowStart = clockMs();
  let windowSpent = 0;
  let attributionSkipped = 0;
  function attribute(flow: FlowEnds): Attribution {
    if (!attributor) return {};
    const t = clockMs();
    if (t - windowStart >= ATTRIBUTION_WINDOW_MS) {
      windowStart = t;
      windowSpent = 0;
    }
    if (windowSpent >= ATTRIBUTION_SHARE * ATTRIBUTION_WINDOW_MS) {
      attributionSkipped++;
      return {};
    }
    try {
      return attributor.attribute(flow);
    } finally {
      windowSpent += clockMs() - t;
    }
  }

  /** The flow's ends, named once, at its first event (a packet of time `tsNs`). */
  function viewOf(flow: ReassembledFlow, tsNs: number): FlowView {
    let v = views.get(flow.id);
    if (v) return v;
    // when the connection was seen, on the attributor's clock (the wall clock's ms)
    const seenAtMs = Date.now() - Math.max(0, monoNowNs() - tsNs) / 1e6;
    const found = attribute({ family: flow.family, client: flow.client, server: flow.server, seenAtMs });
    const ends = [found.client, found.server].filter((o): o is SocketOwner => o !== undefined);
    let skipped = ends.some((o) => o.pid === selfPid);
    if (!skipped && wanted.size > 0) skipped = !ends.some((o) => wanted.has(o.pid));
    v = { client: found.client, server: found.server, skipped };
    if (skipped) skippedFlows++;
    else if (ends.length === 0) wireFlows++;
    views.set(flow.id, v);
    return v;
  }

  /** The flow event (server's view) as the given socket saw it. */
  function emitAs(side: Side, flow: ReassembledFlow, ev: FlowEvent, owner: SocketOwner | undefined): void {
    const client = side === 'client';
    let kind = ev.kind;
    let dir = ev.dir;
    if (client) {
      if (kind === EventKind.ACCEPT) kind = EventKind.CONNECT;
      dir = dir === EventDir.INGRESS ? EventDir.EGRESS : EventDir.INGRESS;
    }
    const local = client ? flow.client : flow.server;
    const remote = client ? flow.server : flow.client;
    const e: CaptureEvent = {
      kind,
      dir,
      tsNs: ev.tsNs,
      enterNs: ev.tsNs,
      cgroupId: 0,
      sockId: SOCK_ID_BASE + flow.id * 2 + (client ? 1 : 0),
      tgid: owner?.pid ?? 0,
      tid: owner?.pid ?? 0,
      ppid: owner?.ppid ?? 0,
      uid: owner?.uid ?? 0,
      len: ev.len,
      seq: ev.seq,
      fd: 0,
      family: flow.family,
      localIp: local.ip,
      localPort: local.port,
      remoteIp: remote.ip,
      remotePort: remote.port,
      source: 0,
      comm: owner?.comm ?? '',
      netns: owner?.netns ?? 0,
      payload: ev.payload,
      tail: ev.tail,
    };
    sink!.onEvent(e);
  }

  function onFlowEvent(flow: ReassembledFlow, ev: FlowEvent): void {
    const v = viewOf(flow, ev.tsNs);
    if (ev.kind === EventKind.CLOSE) views.delete(flow.id);
    if (v.skipped) return;
    if (!v.client && !v.server) {
      emitAs('wire', flow, ev, undefined);
      return;
    }
    // the client's socket first: it is the one parsed, the server's is timed from it
    // (the end of the client's sending is its own FIN: its socket reads nothing then)
    const clientFin = ev.kind === EventKind.DATA && ev.len === 0 && ev.dir === EventDir.INGRESS;
    if (v.client && !clientFin) emitAs('client', flow, ev, v.client);
    if (v.server) emitAs('server', flow, ev, v.server);
  }

  const reassembler = createTcpReassembler({
    isServerPort: options.isServerPort,
    maxFlows: options.maxFlows ?? DEFAULT_MAX_FLOWS,
    onEvent: onFlowEvent,
  });

  // a drain yields the CPU every SLICE_MS of work while under SCHED_IDLE (src/capture/slices.ts)
  const slicer = createSlicer(() => binding.yieldIfIdle());

  function onRecord(r: PacketRecord): void {
    const seg = decodeTcp(LINKTYPE.RAW, r.head, r.len);
    if (!seg) {
      undecodable++;
      return;
    }
    reassembler.segment(seg, r.tsNs, r.tail.length > 0 ? r.tail : undefined);
    slicer.step();
  }

  function counters(): PacketCounters {
    if (closed) return lastCounters;
    const values = native.counters();
    lastCounters = Object.fromEntries(PACKET_COUNTER_NAMES.map((n, i) => [n, values[i] ?? 0])) as PacketCounters;
    return lastCounters;
  }

  function stats(): PacketSourceStats {
    return {
      kernel: counters(),
      undecodable,
      reassembly: reassembler.stats(),
      attribution: attributor?.stats(),
      wireFlows,
      skippedFlows,
      attributionSkipped,
    };
  }

  return {
    mode: 'packet',
    start(s: CaptureSink) {
      sink = s;
      native.start(
        (batch) => {
          slicer.begin();
          try {
            decodePacketBatch(batch, onRecord);
          } catch (err) {
            options.onDecodeError?.(err as Error);
          }
          const t = monoNowNs();
          if (t - lastSweepNs >= SWEEP_EVERY_NS) {
            lastSweepNs = t;
            reassembler.sweep(t - IDLE_FLOW_NS, t - CLOSED_FLOW_NS);
          }
          s.onBatchEnd();
        },
        options.drainIntervalMs,
        options.drainMinIntervalMs ?? 1,
      );
    },
    flush(budgetMs) {
      // the kernel counts the records it wrote: those not read are left
      const unread = closed || native.drain(budgetMs) ? 0 : Math.max(0, counters().packets - native.recordsRead());
      if (sink) {
        reassembler.flush();
        sink.onBatchEnd();
      }
      return unread;
    },
    pause() {
      if (!closed) native.pause();
    },
    resume() {
      if (!closed) native.resume();
    },
    guardSched(options) {
      if (!closed) native.guardSched(options);
    },
    schedGuard: () => native.schedGuard(),
    yields: () => slicer.yields(),
    counters(): KernelCounters {
      const k = counters();
      const c = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as KernelCounters;
      c.events = k.packets;
      c.ringbufDrops = k.ringbufDrops;
      c.truncated = k.truncated;
      c.bytes = k.bytes;
      c.readErrors = k.malformed;
      c.filtered = k.filtered;
      return c;
    },
    details() {
      const s = stats();
      return { packet: s.kernel, undecodable: s.undecodable, reassembly: s.reassembly, attribution: s.attribution, wire_flows: s.wireFlows, skipped_flows: s.skippedFlows, attribution_skipped: s.attributionSkipped };
    },
    stats,
    close,
  };
}

/** Addon errors in words a user can act on. */
export function explainPacketError(err: NativeError): CaptureStartError {
  const code = err.code;
  if (code === 'EPERM' || code === 'EACCES') {
    return new CaptureStartError(
      `${err.message}: packet capture needs root (or CAP_NET_RAW for the AF_PACKET socket and CAP_BPF for the filter); run it with sudo`,
      code,
      err.libbpfLog,
    );
  }
  if (code === 'EAFNOSUPPORT' || code === 'ESOCKTNOSUPPORT') {
    return new CaptureStartError(`${err.message}: this kernel has no AF_PACKET sockets (CONFIG_PACKET)`, code, err.libbpfLog);
  }
  if (code === 'ENODEV' || code === 'ENXIO') {
    return new CaptureStartError(`${err.message}: no such network interface`, code, err.libbpfLog);
  }
  return explainNativeError(err);
}
