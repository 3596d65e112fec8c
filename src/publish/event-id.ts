import { createHash } from 'node:crypto';

/** What identifies one transaction, whoever publishes it and however often. */
export interface TransactionIdentity {
  communityId: string;
  protocol: string;
  /** Which sockets saw it ('client', 'server', 'wire'), in document order. */
  views: readonly string[];
  /** TCP sequence number of the request's first byte, when known. */
  requestSeq?: number;
  /** Start of the main view: kernel monotonic ns, and its wall-clock time. */
  startNs: number;
  timestamp: string;
}

/** Bytes of the SHA-256 kept: 128 bits, 22 base64url characters. */
const ID_BYTES = 16;

/**
 * The transaction's `event.id`, also the document id in Elasticsearch/OpenSearch:
 * the same transaction always gets the same id (a batch sent again after a crash
 * or an outage is recognised as a duplicate), distinct transactions distinct ids
 * (another flow, another request position on the stream, another start time).
 */
export function transactionId(t: TransactionIdentity): string {
  const key = [t.communityId, t.protocol, t.views.join('+'), t.requestSeq ?? '', Math.round(t.startNs), t.timestamp].join('|');
  return createHash('sha256').update(key).digest().subarray(0, ID_BYTES).toString('base64url');
}
