/**
 * The one interface every protocol parser implements. A parser owns one
 * connection: it is fed the bytes each side sent, in stream order, with gaps
 * where bytes were not captured, and emits messages through `onMessage`.
 * Parsers never throw out of feed/gap/end; on garbage they resynchronise or
 * give up on the connection (and say so through `onError`).
 */

/** Which end of the connection sent the bytes. */
export type Sender = 'client' | 'server';

export interface ParserSink<M> {
  onMessage(message: M): void;
  /** The stream could not be parsed; `fatal` means the parser gave up on it. */
  onError(reason: string, fatal: boolean): void;
}

export interface ProtocolParser {
  /** Bytes `from` sent; `tsNs` is the kernel timestamp of the event that carried them. */
  feed(from: Sender, data: Buffer, tsNs: number): void;
  /**
   * `length` bytes `from` sent were not captured. `lost` is true when they were
   * lost (missed event, ring buffer full), false when only the payload head was
   * copied by design (max_payload).
   */
  gap(from: Sender, length: number, tsNs: number, lost?: boolean): void;
  /** `from` will send nothing more (end of stream / close). */
  end(from: Sender, tsNs: number): void;
  /** Bytes buffered right now (for the per-connection memory bound). */
  bufferedBytes(): number;
}

export type ProtocolName = 'http' | 'mysql' | 'pgsql' | 'redis';

/** Ids shared with the kernel's port map (struct pbe_port_value.protocol). */
export const PROTOCOL_IDS: Record<ProtocolName, number> = { http: 1, mysql: 2, pgsql: 3, redis: 4 };
