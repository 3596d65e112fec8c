import type { ProcessInfo } from '../conn/process-info';
import type { ProtocolName, ProtocolTransaction } from '../protocols/types';

/** The two ends of a connection, client first, as one socket saw them. */
export interface FlowTuple {
  family: 4 | 6;
  clientIp: string;
  clientPort: number;
  serverIp: string;
  serverPort: number;
}

/** One end's view of one transaction (from the client's or the server's socket). */
export interface TransactionView {
  protocol: ProtocolName;
  /** Which socket saw it. */
  side: 'client' | 'server';
  tuple: FlowTuple;
  /** The process owning the socket that saw it (undefined: seen on the wire, not by a socket). */
  process?: ProcessInfo;
  netns: number;
  txn: ProtocolTransaction;
  /** TCP sequence number of the request's first byte (same on both ends), when known. */
  requestSeq?: number;
  /** Start and end (monotonic ns) as this end saw them. */
  startNs: number;
  endNs: number;
}

/** A transaction as published: one or both views of it. */
export interface Transaction {
  client?: TransactionView;
  server?: TransactionView;
}
