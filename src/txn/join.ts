import type { Transaction, TransactionView } from './types';

export interface JoinerOptions {
  /** How long a view waits for its peer (ms). */
  windowMs: number;
  emit: (txn: Transaction) => void;
  /** Most views waiting at once; past it the oldest is emitted alone. */
  maxPending?: number;
  now?: () => number;
}

export interface Joiner {
  /** A view is complete; `mayHavePeer` says the other end may be traced on this host. */
  offer(view: TransactionView, mayHavePeer: boolean): void;
  /** Emit a transaction whose views are already paired (or known to be alone). */
  emitNow(txn: Transaction): void;
  /** Emit views whose window passed. */
  tick(): void;
  /** Emit everything still waiting. */
  flush(): void;
  pending(): number;
  /** Views emitted alone because the bound was hit. */
  evicted(): number;
}

function joinKey(v: TransactionView): string | undefined {
  if (v.requestSeq === undefined) return undefined;
  const t = v.tuple;
  return `${t.clientIp}|${t.clientPort}|${t.serverIp}|${t.serverPort}|${v.requestSeq}`;
}

function single(v: TransactionView): Transaction {
  return v.side === 'client' ? { client: v } : { server: v };
}

/**
 * When both ends of a connection are on this host, the kernel shows each
 * transaction twice (client socket, server socket). Both carry the same TCP
 * sequence number for the request's first byte, so the pair is joined on
 * tuple + sequence into one transaction with both processes.
 */
export function createJoiner({ windowMs, emit, maxPending = 100_000, now = Date.now }: JoinerOptions): Joiner {
  const waiting = new Map<string, { view: TransactionView; deadline: number }>();
  let evictions = 0;
  return {
    offer(view, mayHavePeer) {
      const key = joinKey(view);
      if (key === undefined) {
        emit(single(view));
        return;
      }
      const peer = waiting.get(key);
      if (peer && peer.view.side !== view.side) {
        waiting.delete(key);
        emit(view.side === 'client' ? { client: view, server: peer.view } : { client: peer.view, server: view });
        return;
      }
      if (!mayHavePeer || windowMs === 0) {
        emit(single(view));
        return;
      }
      if (peer) emit(single(peer.view)); // same side twice: the older one has no partner
      if (waiting.size >= maxPending) {
        const oldest = waiting.entries().next();
        if (!oldest.done) {
          waiting.delete(oldest.value[0]);
          evictions++;
          emit(single(oldest.value[1].view));
        }
      }
      waiting.set(key, { view, deadline: now() + windowMs });
    },
    emitNow: (txn) => emit(txn),
    tick() {
      const t = now();
      // insertion order is deadline order (constant window)
      for (const [key, w] of waiting) {
        if (w.deadline > t) break;
        waiting.delete(key);
        emit(single(w.view));
      }
    },
    flush() {
      for (const w of waiting.values()) emit(single(w.view));
      waiting.clear();
    },
    pending: () => waiting.size,
    evicted: () => evictions,
  };
}
