import type { CaptureEvent } from '../events';
import { COUNTER_NAMES, type KernelCounters } from '../layout';
import type { CaptureSink, CaptureSource } from '../source';
import { readCapture, type CapturedPacket } from './file';
import { decodeTcp } from './packet';
import { createTcpReassembler, type ReassemblyStats } from './reassembly';

/**
 * Packets of a capture file → the same typed events the kernel produces, one
 * synthetic "server socket" per TCP flow (see reassembly.ts), so replay runs
 * the very pipeline live capture runs.
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

export interface PcapStats extends Omit<ReassemblyStats, 'evictedFlows'> {
  packets: number;
  notTcp: number;
}

export interface PcapSource extends CaptureSource {
  /** Capture time of the first packet (for @timestamp): seconds and ns. */
  readonly base: { sec: number; nsec: number };
  stats(): PcapStats;
}

export function createPcapSource(file: Buffer, options: PcapSourceOptions): PcapSource {
  const { isServerPort, inferUnknown = false, maxHeldSegments, maxHeldBytes, onTime } = options;
  const base = { sec: -1, nsec: 0 };
  let packets = 0;
  let notTcp = 0;
  let events = 0;
  let sink: CaptureSink | undefined;

  const reassembler = createTcpReassembler({
    isServerPort,
    inferUnknown,
    maxHeldSegments,
    maxHeldBytes,
    onEvent(f, ev) {
      events++;
      const e: CaptureEvent = {
        kind: ev.kind,
        dir: ev.dir,
        tsNs: ev.tsNs,
        enterNs: ev.tsNs,
        cgroupId: 0,
        sockId: f.id,
        tgid: 0,
        tid: 0,
        ppid: 0,
        uid: 0,
        len: ev.len,
        seq: ev.seq,
        fd: 0,
        family: f.family,
        localIp: f.server.ip,
        localPort: f.server.port,
        remoteIp: f.client.ip,
        remotePort: f.client.port,
        source: 0,
        comm: '',
        netns: 0,
        payload: ev.payload,
        tail: ev.tail,
      };
      sink!.onEvent(e);
    },
  });

  function onPacket(p: CapturedPacket): void {
    packets++;
    if (base.sec < 0) {
      base.sec = p.tsSec;
      base.nsec = p.tsNsec;
    }
    const tsNs = (p.tsSec - base.sec) * 1e9 + (p.tsNsec - base.nsec);
    onTime?.(tsNs);
    const seg = decodeTcp(p.linktype, p.data);
    if (!seg) {
      notTcp++;
      return;
    }
    reassembler.segment(seg, tsNs);
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
      reassembler.flush();
      s.onBatchEnd();
    },
    flush: () => 0,
    counters(): KernelCounters {
      const c = Object.fromEntries(COUNTER_NAMES.map((k) => [k, 0])) as KernelCounters;
      c.events = events;
      return c;
    },
    close() {},
    stats() {
      const { evictedFlows: _evicted, ...r } = reassembler.stats();
      return { packets, notTcp, ...r };
    },
  };
}
