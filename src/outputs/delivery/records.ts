import { createHash } from 'node:crypto';
import { documentJson, type TxnDocument } from '../../publish/document';
import { getField } from '../../publish/processors';
import type { DeliveryRecord } from './types';

/** The default target: one data stream per protocol. */
export const DEFAULT_INDEX = 'packetbeat-ebpf-%{[network.protocol]}';
/** Placeholder value when a document lacks the field an index name uses. */
const MISSING_FIELD = 'unknown';
/** Placeholders: %{[dotted.field]} (Beats' form) or %{dotted.field}. */
const PLACEHOLDER = /%\{\[?([A-Za-z0-9_@.-]+)\]?\}/g;

/** Index names: lowercase, none of \ / * ? " < > | , # : or spaces. */
function sanitiseIndexPart(value: string): string {
  return value.toLowerCase().replace(/[\\/*?"<>|,#:\s]/g, '_');
}

/** Compile an index name pattern into a function of the document. */
export function compileIndexName(pattern: string): (doc: TxnDocument) => string {
  const fields = [...pattern.matchAll(PLACEHOLDER)].map((m) => m[1]);
  if (fields.length === 0) return () => pattern;
  return (doc) =>
    pattern.replace(PLACEHOLDER, (_m, field: string) => {
      const v = getField(doc, field);
      return typeof v === 'string' || typeof v === 'number' ? sanitiseIndexPart(String(v)) : MISSING_FIELD;
    });
}

/**
 * The document's id: its `event.id` (deterministic per transaction, see
 * publish/event-id.ts), or, when a processor removed it, a hash of its content
 * (the same document sent twice still gets one id).
 */
export function documentId(doc: TxnDocument, source: string): string {
  const id = (doc.event as { id?: unknown } | undefined)?.id;
  if (typeof id === 'string' && id.length > 0 && id.length <= 512) return id;
  return createHash('sha256').update(source).digest('base64url').slice(0, 22);
}

export function toRecord(doc: TxnDocument, indexOf: (doc: TxnDocument) => string): DeliveryRecord {
  const source = documentJson(doc);
  return { id: documentId(doc, source), index: indexOf(doc), source };
}

/** Bytes a record costs in memory and in a bulk body (action line included, roughly). */
export function recordBytes(r: DeliveryRecord): number {
  return r.source.length + r.id.length + r.index.length + 32;
}
