/** One document ready for a bulk request: its id, its index and its JSON text. */
export interface DeliveryRecord {
  /** Deterministic: the same transaction always gets the same id (`create` then dedups). */
  id: string;
  index: string;
  /** The document serialised as JSON (one line). */
  source: string;
}

/** A document the backend refused for its content (mapping error, bad value, ...). */
export interface Rejection {
  record: DeliveryRecord;
  status: number;
  /** The backend's error object (type, reason, caused_by). */
  error: unknown;
}

/** What became of one bulk request. */
export type SendResult =
  /** The request was answered; per document: created, duplicate, rejected, or to retry. */
  | { status: 'ok'; created: number; duplicates: number; rejected: Rejection[]; retry: DeliveryRecord[] }
  /** Nothing was acknowledged (connection error, timeout, 429/5xx or auth failure on the request). */
  | { status: 'retryable'; reason: string; statusCode?: number }
  /** The request body is too large for the backend (413): send smaller batches. */
  | { status: 'too_large'; reason: string };

/** A backend that takes bulk `create` requests (Elasticsearch, OpenSearch). */
export interface BulkSink {
  send(records: DeliveryRecord[]): Promise<SendResult>;
  close(): Promise<void>;
}
