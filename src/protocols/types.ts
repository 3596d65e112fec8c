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

/** Where one message of a transaction sat on the wire. */
export interface MessageSpan {
  /** Kernel timestamps (monotonic ns) of its first and last byte. */
  startNs: number;
  endNs: number;
  /** Bytes on the wire. */
  bytes: number;
  /** Offset of its first byte in its direction's stream (from the session's start). */
  streamOffset: number;
}

/**
 * One request/response exchange as one socket saw it. `request` or `response`
 * is missing when unmatched. `data` is the protocol's own (decoded messages).
 */
export interface ProtocolTransaction<D = unknown> {
  request?: MessageSpan;
  response?: MessageSpan;
  /** e.g. "Unmatched request", "Packet loss while capturing the response" */
  notes: string[];
  data: D;
}

export interface TransactionSink<D = unknown> {
  onTransaction(txn: ProtocolTransaction<D>): void;
  /** The stream could not be parsed; `fatal` means the session gave up on it. */
  onError(reason: string, fatal: boolean): void;
}

/** A protocol parser plus its request/response pairing, for one connection. */
export interface ProtocolSession extends ProtocolParser {
  /** Report requests whose last byte is older than `beforeNs` as unmatched. */
  expire(beforeNs: number): void;
  /** The connection is over: report what is still pending as unmatched. */
  close(tsNs: number): void;
  /** Requests waiting for their response. */
  pending(): number;
}

/** What a protocol contributes to a transaction document. */
export interface DocumentFields {
  status: 'OK' | 'Error';
  outcome: 'success' | 'failure' | 'unknown';
  /** Both the request and its response were seen (by either view). */
  matched: boolean;
  requestBytes: number;
  responseBytes: number;
  /** destination.domain (e.g. from the Host header) */
  domain?: string;
  /** event.action (e.g. "redis.get") */
  action?: string;
  /** Root fields (method, query, path, ...). */
  root: Record<string, unknown>;
  /** Namespaced fields (http.*, url.*, pgsql.*, db.*, ...). */
  fields: Record<string, unknown>;
}

export interface ServerEndpoint {
  ip: string;
  port: number;
}

/** How sure a module is that a connection speaks its protocol, from its first bytes. */
export type Detection = 'yes' | 'no' | 'need-more';

export interface ProtocolModule<D = unknown> {
  readonly name: ProtocolName;
  createSession(sink: TransactionSink<D>): ProtocolSession;
  /**
   * Content inference for connections on ports not configured for any protocol:
   * the first bytes the client sent and the first bytes the server sent (either
   * may be empty: for MySQL the server speaks first). Must be cheap and strict.
   */
  detect(client: Buffer, server: Buffer): Detection;
  /**
   * Document fields of one transaction from the views that saw it (client's
   * first when both did; they saw the same bytes, but one may have missed some).
   */
  documentFields(views: Array<ProtocolTransaction<D>>, server: ServerEndpoint): DocumentFields;
  /**
   * The JSON text of one of `fields`' values as documentFields made it, exactly
   * what JSON.stringify gives, written faster than the generic walk where the
   * module knows the value's shape; undefined for a key it does not write.
   */
  fieldJson?: (key: string, value: unknown) => string | undefined;
}
