import * as path from 'node:path';
import { createRedisModule, type RedisModuleOptions } from '../../../../src/protocols/redis';
import type { RedisData } from '../../../../src/protocols/redis/session';
import type { ProtocolSession, ProtocolTransaction, Sender } from '../../../../src/protocols/types';

/** ../shared/pcaps relative to the project root (dist/test/unit/protocols/redis → 6 levels up). */
export const PCAP_DIR = path.resolve(__dirname, '../../../../../../shared/pcaps');
/** test/fixtures/redis in the source tree. */
export const FIXTURE_DIR = path.resolve(__dirname, '../../../../../test/fixtures/redis');

/** A RESP request array of bulk strings, as clients send commands. */
export function resp(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A bulk string reply. */
export function bulk(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]);
}

export type Txn = ProtocolTransaction<RedisData>;

export interface Harness {
  session: ProtocolSession;
  txns: Txn[];
  errors: Array<{ reason: string; fatal: boolean }>;
  /** Feed the client's bytes (string or Buffer) at ts. */
  c(data: string | Buffer, ts?: number): void;
  s(data: string | Buffer, ts?: number): void;
}

export const module = createRedisModule();

export function harness(options: RedisModuleOptions = {}): Harness {
  const m = createRedisModule(options);
  const txns: Txn[] = [];
  const errors: Array<{ reason: string; fatal: boolean }> = [];
  const session = m.createSession({
    onTransaction: (t) => txns.push(t),
    onError: (reason, fatal) => errors.push({ reason, fatal }),
  });
  let clock = 1000;
  const feed = (from: Sender) => (data: string | Buffer, ts?: number) => {
    clock = ts ?? clock + 10;
    session.feed(from, typeof data === 'string' ? Buffer.from(data, 'latin1') : data, clock);
  };
  return { session, txns, errors, c: feed('client'), s: feed('server') };
}

/** The document-relevant facts of a transaction, for comparisons. */
export function summary(t: Txn): Record<string, unknown> {
  const d = module.documentFields([t], { ip: '127.0.0.1', port: 6379 });
  return {
    status: d.status,
    method: d.root.method,
    resource: d.root.resource,
    query: d.root.query,
    redis: d.fields.redis,
    requestBytes: d.requestBytes,
    responseBytes: d.responseBytes,
    requestOffset: t.request?.streamOffset,
    responseOffset: t.response?.streamOffset,
    notes: t.notes,
    pushes: t.data.pushes,
  };
}


/** One step of a scripted conversation. */
export type Step = { from: Sender; data: Buffer };

/**
 * Feeds a conversation, each step's bytes split into pieces by `cuts` (sorted
 * offsets within the step), with a fresh timestamp per step (pieces of a step
 * share it). Returns the transactions after close.
 */
export function run(steps: Step[], cuts: (step: number, len: number) => number[] = () => [], options: RedisModuleOptions = {}): Txn[] {
  const h = harness(options);
  let ts = 1000;
  steps.forEach((st, i) => {
    ts += 1000;
    let at = 0;
    for (const cut of [...cuts(i, st.data.length), st.data.length]) {
      if (cut > at) h.session.feed(st.from, st.data.subarray(at, cut), ts);
      at = Math.max(at, cut);
    }
  });
  h.session.close(ts + 1000);
  return h.txns;
}

export { prng } from '../../../helpers/session-ops';
