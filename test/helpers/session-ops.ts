/** Driving a protocol session in unit tests: feeds, gaps and ends, and what it reports. */
import type { ProtocolSession, ProtocolTransaction, Sender, TransactionSink } from '../../src/protocols/types';

export type Op =
  | { op: 'feed'; from: Sender; data: Buffer; ts: number }
  | { op: 'gap'; from: Sender; length: number; ts: number; lost: boolean }
  | { op: 'end'; from: Sender; ts: number };

export interface Run<D> {
  session: ProtocolSession;
  txns: Array<ProtocolTransaction<D>>;
  errors: Array<[string, boolean]>;
}

/** A session created on a sink that collects transactions and errors. */
export function newSessionRun<D>(create: (sink: TransactionSink<D>) => ProtocolSession): Run<D> {
  const txns: Array<ProtocolTransaction<D>> = [];
  const errors: Array<[string, boolean]> = [];
  const session = create({ onTransaction: (t) => txns.push(t), onError: (r, f) => errors.push([r, f]) });
  return { session, txns, errors };
}

export function apply<D>(run: Run<D>, ops: Op[]): Run<D> {
  for (const o of ops) {
    if (o.op === 'feed') run.session.feed(o.from, o.data, o.ts);
    else if (o.op === 'gap') run.session.gap(o.from, o.length, o.ts, o.lost);
    else run.session.end(o.from, o.ts);
  }
  return run;
}

/** mulberry32: small deterministic PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
