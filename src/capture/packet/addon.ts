import * as path from 'node:path';
import type { SchedGuardOptions, SchedGuardState } from '../source';
import type { SocketLookup } from './attribution';
import type { PacketAddonLayout } from './layout';

/** Options the native PacketCapture takes (validated and defaulted in TypeScript). */
export interface NativePacketOptions {
  maxPayload: number;
  wakeupBytes: number;
  ringBytes: number;
  debug: boolean;
}

/** The native object (addon/packet.cc). */
export interface NativePacketCapture {
  /** Open one AF_PACKET socket per interface index (one for every interface when empty). */
  attach(ifindexes: number[]): void;
  setPorts(entries: Array<[number, number]>): void;
  /** Drain every minIntervalMs while packets keep coming, backing off to intervalMs when idle. */
  start(onBatch: (batch: Buffer) => void, intervalMs: number, minIntervalMs: number): void;
  /** A turn's worth of what waits; with a budget: all of it, paused or not, for up to budgetMs (true: emptied). */
  drain(): void;
  drain(budgetMs: number): boolean;
  /** Records taken from the ring buffer so far (the kernel counts those it wrote). */
  recordsRead(): number;
  pause(): void;
  resume(): void;
  counters(): number[];
  /** sched_idle auto (addon/sched-guard.h): watch the ring buffer, the threads' policy follows its fill. */
  guardSched(options: SchedGuardOptions): void;
  schedGuard(): SchedGuardState;
  programs(): number[];
  sockets(): number;
  close(): void;
}

export interface PacketBinding {
  PacketCapture: new (options: NativePacketOptions) => NativePacketCapture;
  /** NETLINK_SOCK_DIAG lookups in this process's network namespace, or in the one at nsPath. */
  SockDiag: new (nsPath?: string) => SocketLookup;
  layout: PacketAddonLayout;
  /** Under SCHED_IDLE: sched_yield, and true; otherwise false (addon/sched-guard.h, src/capture/slices.ts). */
  yieldIfIdle(): boolean;
}

export const PACKET_ADDON_PATH = path.resolve(__dirname, '../../../../addon/build/Release/pbe_packet.node');

let cached: PacketBinding | undefined;

/** Load the addon once. The binding is injectable elsewhere (tests pass their own). */
export function loadPacketBinding(): PacketBinding {
  if (!cached) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(PACKET_ADDON_PATH) as PacketBinding;
    } catch (err) {
      throw new Error(`failed to load the native addon at ${PACKET_ADDON_PATH} (run \`npm run build\`): ${(err as Error).message}`);
    }
  }
  return cached;
}
