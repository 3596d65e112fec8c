import { hash } from 'node:crypto';

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

/** The SHA-256 is cut to 128 bits: 22 base64url characters, the last holding 2 bits. */
const ID_CHARS = 22;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** A base64url character (by char code) → the character of its top 2 bits (the 22nd character's). */
const TOP_BITS: readonly string[] = Array.from({ length: 128 }, (_, c) => {
  const i = B64URL.indexOf(String.fromCharCode(c));
  return i < 0 ? '' : B64URL[i & 0b110000];
});

/** views.join('+') for the usual one or two views (no array for the join). */
function viewsKey(views: readonly string[]): string {
  return views.length === 2 ? views[0] + '+' + views[1] : views.length === 1 ? views[0] : views.join('+');
}

/**
 * The transaction's `event.id`, also the document id in Elasticsearch/OpenSearch:
 * the same transaction always gets the same id (a batch sent again after a crash
 * or an outage is recognised as a duplicate), distinct transactions distinct ids
 * (another flow, another request position on the stream, another start time).
 */
export function transactionId(t: TransactionIdentity): string {
  // the text [communityId, protocol, views joined by '+', requestSeq or '', startNs rounded, timestamp].join('|')
  const key = `${t.communityId}|${t.protocol}|${viewsKey(t.views)}|${t.requestSeq ?? ''}|${Math.round(t.startNs)}|${t.timestamp}`;
  // one-shot hash straight to text (no Hash object, no Buffer: a third of the cost);
  // the 22nd character keeps only the 2 bits of the 16th byte, as if the digest were cut first
  const full = hash('sha256', key, 'base64url');
  return full.slice(0, ID_CHARS - 1) + TOP_BITS[full.charCodeAt(ID_CHARS - 1)];
}
