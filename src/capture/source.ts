import type { CaptureEvent } from './events';
import type { KernelCounters } from './layout';

/** Where events come from: the kernel (eBPF), and later AF_PACKET or a pcap file. */
export interface CaptureSink {
  /** One event; its payload is only valid during the call. */
  onEvent(event: CaptureEvent): void;
  /** A batch ended (a point to flush outputs, run timers). */
  onBatchEnd(): void;
}

export interface CaptureSource {
  readonly mode: string;
  start(sink: CaptureSink): void;
  /** Deliver what is buffered now (at shutdown, before close). */
  flush(): void;
  counters(): KernelCounters;
  /** Stop delivering events for now (outputs are full); the source buffers or counts losses. */
  pause?(): void;
  resume?(): void;
  /** Content-inference decisions for sockets of unknown ports (kernel sources only). */
  setVerdicts?(verdicts: Array<[sockId: number, track: boolean]>): void;
  /** Figures of the mode beyond the kernel counters (for the stats line), e.g. packet reassembly. */
  details?(): Record<string, unknown>;
  /** Detach everything. Idempotent. */
  close(): void;
}
