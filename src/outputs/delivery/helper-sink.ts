/**
 * A BulkSink over a client's bulk helper (@elastic/elasticsearch and
 * @opensearch-project/opensearch ship the same one): one helper run per batch,
 * sent as one request; the helper's onDrop says per document what went wrong.
 */
import type { BulkSink, DeliveryRecord, Rejection, SendResult } from './types';

/** What a bulk helper reports for a document it did not index. */
export interface HelperDrop {
  status: number;
  error: unknown;
  operation: unknown;
}

export interface HelperBulkOptions {
  datasource: DeliveryRecord[];
  onDocument(record: DeliveryRecord): [object, string];
  onDrop(drop: HelperDrop): void;
  flushBytes: number;
  flushInterval: number;
  concurrency: number;
  retries: number;
  wait: number;
}

/** `client.helpers.bulk`, as both clients define it. */
export type HelperBulk = (options: HelperBulkOptions) => PromiseLike<unknown>;

/** Body bytes that never trigger a second request within one batch. */
const ONE_REQUEST = Number.MAX_SAFE_INTEGER;
/** The helper's own timer; our batches are sent whole, so it never fires usefully. */
const HELPER_FLUSH_INTERVAL_MS = 24 * 3600 * 1000;
const REASON_CHARS = 500;

interface ClientError {
  name?: string;
  message?: string;
  statusCode?: number;
  meta?: { statusCode?: number };
}

/** A failed request: 413 means smaller batches; anything else is worth retrying. */
export function classifyRequestError(err: unknown): SendResult {
  const e = (err ?? {}) as ClientError;
  const statusCode = e.meta?.statusCode ?? e.statusCode;
  const reason = `${e.name ?? 'Error'}: ${e.message ?? String(err)}`.slice(0, REASON_CHARS);
  if (statusCode === 413) return { status: 'too_large', reason };
  return { status: 'retryable', reason, statusCode: typeof statusCode === 'number' ? statusCode : undefined };
}

function dropId(operation: unknown): string | undefined {
  const id = (operation as { create?: { _id?: unknown } } | undefined)?.create?._id;
  return typeof id === 'string' ? id : undefined;
}

export function createHelperSink(bulk: HelperBulk, close: () => Promise<void>): BulkSink {
  return {
    async send(records) {
      const byId = new Map<string, DeliveryRecord>();
      for (const r of records) byId.set(r.id, r);
      let duplicates = 0;
      const retry: DeliveryRecord[] = [];
      const rejected: Rejection[] = [];
      try {
        await bulk({
          datasource: records,
          onDocument: (r) => [{ create: { _index: r.index, _id: r.id } }, r.source],
          onDrop(drop) {
            const id = dropId(drop.operation);
            const record = id === undefined ? undefined : byId.get(id);
            if (!record) return;
            // 409 on create: the backend has it already (sent before a crash or an outage)
            if (drop.status === 409) duplicates++;
            else if (drop.status === 429 || drop.status >= 500) retry.push(record);
            else rejected.push({ record, status: drop.status, error: drop.error });
          },
          flushBytes: ONE_REQUEST,
          flushInterval: HELPER_FLUSH_INTERVAL_MS,
          concurrency: 1,
          // 429 per document comes back through onDrop: our backoff retries it
          retries: 0,
          wait: 0,
        });
      } catch (err) {
        return classifyRequestError(err);
      }
      const created = records.length - duplicates - retry.length - rejected.length;
      return { status: 'ok', created, duplicates, retry, rejected };
    },
    close,
  };
}
