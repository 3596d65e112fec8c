/** Drives a MySQL session with feeds and gaps and collects what it reports. */
import { createMysqlSession } from '../../../../src/protocols/mysql/session';
import type { MysqlData, MysqlSessionOptions } from '../../../../src/protocols/mysql/types';
import type { ProtocolTransaction, Sender } from '../../../../src/protocols/types';
import { apply, newSessionRun, type Op, type Run as SessionRun } from '../../../helpers/session-ops';

export type { Op } from '../../../helpers/session-ops';
export { apply } from '../../../helpers/session-ops';
export type Run = SessionRun<MysqlData>;

export function newRun(options?: MysqlSessionOptions): Run {
  return newSessionRun<MysqlData>((sink) => createMysqlSession(sink, options));
}

export function runOps(ops: Op[], options?: MysqlSessionOptions): Run {
  return apply(newRun(options), ops);
}

export const c = (data: Buffer | Buffer[], ts = 0): Op => ({ op: 'feed', from: 'client', data: Array.isArray(data) ? Buffer.concat(data) : data, ts });
export const s = (data: Buffer | Buffer[], ts = 0): Op => ({ op: 'feed', from: 'server', data: Array.isArray(data) ? Buffer.concat(data) : data, ts });
export const gap = (from: Sender, length: number, ts = 0, lost = true): Op => ({ op: 'gap', from, length, ts, lost });

/** Number the ops' timestamps 1, 2, 3, ... (where they are 0). */
export function timed(ops: Op[]): Op[] {
  return ops.map((o, i) => (o.ts === 0 ? { ...o, ts: i + 1 } : o));
}

/** The same ops with every feed cut into pieces at the given relative positions (0..1). */
export function split(ops: Op[], cut: (data: Buffer, from: Sender) => number[]): Op[] {
  const out: Op[] = [];
  for (const o of ops) {
    if (o.op !== 'feed') {
      out.push(o);
      continue;
    }
    const points = [...new Set(cut(o.data, o.from))].filter((p) => p > 0 && p < o.data.length).sort((a, b) => a - b);
    let prev = 0;
    for (const p of [...points, o.data.length]) {
      out.push({ ...o, data: o.data.subarray(prev, p) });
      prev = p;
    }
  }
  return out;
}

/** What a transaction says, for comparisons. */
export function summary(t: ProtocolTransaction<MysqlData>): unknown {
  return JSON.parse(JSON.stringify(t));
}
