/** Builders of PostgreSQL protocol messages (as libpq/servers send them) and a session harness. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../../../../src/capture/pcap/file';
import { decodeTcp } from '../../../../src/capture/pcap/packet';
import { createPgsqlSession } from '../../../../src/protocols/pgsql/session';
import type { PgsqlData, PgsqlOptions } from '../../../../src/protocols/pgsql/types';
import type { ProtocolTransaction, Sender } from '../../../../src/protocols/types';
import { newSessionRun, type Op, type Run as SessionRun } from '../../../helpers/session-ops';

// ---- message builders ------------------------------------------------------------

function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A typed message: type byte, int32 length, body. */
export function msg(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(body.length + 4), body]);
}

export const fe = {
  startup(params: Record<string, string>, version = 196608): Buffer {
    const body = Buffer.concat([int32(version), ...Object.entries(params).flatMap(([k, v]) => [cstring(k), cstring(v)]), Buffer.from([0])]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  sslRequest: (): Buffer => Buffer.concat([int32(8), int32(80877103)]),
  gssencRequest: (): Buffer => Buffer.concat([int32(8), int32(80877104)]),
  cancelRequest: (pid: number, key: number): Buffer => Buffer.concat([int32(16), int32(80877102), int32(pid), int32(key)]),
  password: (p: string): Buffer => msg('p', cstring(p)),
  query: (sql: string): Buffer => msg('Q', cstring(sql)),
  parse: (name: string, sql: string, types: number[] = []): Buffer => msg('P', cstring(name), cstring(sql), int16(types.length), ...types.map(int32)),
  bind(portal: string, stmt: string, params: Array<string | null> = [], resultFormats: number[] = []): Buffer {
    const values = params.flatMap((p) => (p === null ? [int32(-1)] : [int32(Buffer.byteLength(p)), Buffer.from(p)]));
    return msg('B', cstring(portal), cstring(stmt), int16(0), int16(params.length), ...values, int16(resultFormats.length), ...resultFormats.map(int16));
  },
  describe: (kind: 'S' | 'P', name: string): Buffer => msg('D', Buffer.from(kind), cstring(name)),
  execute: (portal: string, maxRows = 0): Buffer => msg('E', cstring(portal), int32(maxRows)),
  close: (kind: 'S' | 'P', name: string): Buffer => msg('C', Buffer.from(kind), cstring(name)),
  sync: (): Buffer => msg('S'),
  flush: (): Buffer => msg('H'),
  terminate: (): Buffer => msg('X'),
  copyData: (data: string): Buffer => msg('d', Buffer.from(data)),
  copyDone: (): Buffer => msg('c'),
  copyFail: (why: string): Buffer => msg('f', cstring(why)),
};

export interface Field {
  name: string;
  type?: number;
  format?: number;
}

export const be = {
  sslYes: (): Buffer => Buffer.from('S'),
  sslNo: (): Buffer => Buffer.from('N'),
  authOk: (): Buffer => msg('R', int32(0)),
  authMd5: (): Buffer => msg('R', int32(5), Buffer.from([1, 2, 3, 4])),
  parameterStatus: (k: string, v: string): Buffer => msg('S', cstring(k), cstring(v)),
  backendKeyData: (pid: number, key: number): Buffer => msg('K', int32(pid), int32(key)),
  ready: (status = 'I'): Buffer => msg('Z', Buffer.from(status)),
  rowDescription: (fields: Array<string | Field>): Buffer =>
    msg(
      'T',
      int16(fields.length),
      ...fields.map((f) => {
        const x = typeof f === 'string' ? { name: f } : f;
        return Buffer.concat([cstring(x.name), int32(16384), int16(1), int32(x.type ?? 25), int16(-1), int32(-1), int16(x.format ?? 0)]);
      }),
    ),
  dataRow: (values: Array<string | Buffer | null>): Buffer =>
    msg(
      'D',
      int16(values.length),
      ...values.map((v) => {
        if (v === null) return int32(-1);
        const b = typeof v === 'string' ? Buffer.from(v) : v;
        return Buffer.concat([int32(b.length), b]);
      }),
    ),
  commandComplete: (tag: string): Buffer => msg('C', cstring(tag)),
  emptyQuery: (): Buffer => msg('I'),
  parseComplete: (): Buffer => msg('1'),
  bindComplete: (): Buffer => msg('2'),
  closeComplete: (): Buffer => msg('3'),
  noData: (): Buffer => msg('n'),
  portalSuspended: (): Buffer => msg('s'),
  parameterDescription: (types: number[]): Buffer => msg('t', int16(types.length), ...types.map(int32)),
  error: (fields: Record<string, string>): Buffer =>
    msg('E', ...Object.entries(fields).flatMap(([k, v]) => [Buffer.from(k), cstring(v)]), Buffer.from([0])),
  notice: (message: string): Buffer => msg('N', Buffer.from('S'), cstring('NOTICE'), Buffer.from('C'), cstring('00000'), Buffer.from('M'), cstring(message), Buffer.from([0])),
  copyIn: (columns: number): Buffer => msg('G', Buffer.from([0]), int16(columns), ...Array.from({ length: columns }, () => int16(0))),
  copyOut: (columns: number): Buffer => msg('H', Buffer.from([0]), int16(columns), ...Array.from({ length: columns }, () => int16(0))),
  copyData: (data: string): Buffer => msg('d', Buffer.from(data)),
  copyDone: (): Buffer => msg('c'),
};

/** A PostgreSQL ErrorResponse as servers send it. */
export function pgError(code: string, message: string, severity = 'ERROR'): Buffer {
  return be.error({ S: severity, V: severity, C: code, M: message, F: 'parse_relation.c', L: '1392', R: 'parserOpenTable' });
}

// ---- harness -----------------------------------------------------------------------

export type { Op } from '../../../helpers/session-ops';

export const feed = (from: Sender, data: Buffer | Buffer[], ts: number): Op => ({
  op: 'feed',
  from,
  data: Array.isArray(data) ? Buffer.concat(data) : data,
  ts,
});
export const gap = (from: Sender, length: number, ts: number, lost = true): Op => ({ op: 'gap', from, length, ts, lost });

export type Run = SessionRun<PgsqlData>;

export function newRun(options?: PgsqlOptions): Run {
  return newSessionRun<PgsqlData>((sink) => createPgsqlSession(sink, options));
}

export { apply } from '../../../helpers/session-ops';

/** Feeds ops, each feed cut into pieces at the given positions (same timestamp). */
export function splitOps(ops: Op[], cut: (data: Buffer, index: number) => number[]): Op[] {
  const out: Op[] = [];
  ops.forEach((o, index) => {
    if (o.op !== 'feed') {
      out.push(o);
      return;
    }
    let prev = 0;
    for (const c of [...cut(o.data, index), o.data.length]) {
      if (c <= prev || c > o.data.length) continue;
      out.push({ ...o, data: o.data.subarray(prev, c) });
      prev = c;
    }
  });
  return out;
}


/** What a transaction says, for comparisons. */
export function summary(t: ProtocolTransaction<PgsqlData>): Record<string, unknown> {
  const r = t.data.response;
  return {
    query: t.data.request?.query,
    req: t.request && [t.request.bytes, t.request.streamOffset, t.request.startNs, t.request.endNs],
    res: t.response && [t.response.bytes, t.response.streamOffset, t.response.startNs, t.response.endNs],
    rows: r?.numRows,
    fields: r?.numFields,
    tag: r?.tag,
    error: r?.error?.code,
    notes: t.notes,
  };
}

// ---- pcaps from Packetbeat's suite -------------------------------------------------

/** ../shared/pcaps relative to the project root (dist/test/unit/protocols/pgsql → 5 levels up). */
export const PCAP_DIR = path.resolve(__dirname, '../../../../../../shared/pcaps');

/** The TCP payloads of one pcap's connections to `port`, in capture order (one op per packet). */
export function pcapOps(file: string, port: number): Op[][] {
  const buf = fs.readFileSync(path.join(PCAP_DIR, file));
  const conns = new Map<string, Op[]>();
  let sec0: number | undefined;
  for (const pkt of readCapture(buf)) {
    sec0 ??= pkt.tsSec;
    const seg = decodeTcp(pkt.linktype, pkt.data);
    if (!seg || seg.payload.length === 0) continue;
    const toServer = seg.dstPort === port;
    if (!toServer && seg.srcPort !== port) continue;
    const key = toServer ? `${seg.srcIp}:${seg.srcPort}` : `${seg.dstIp}:${seg.dstPort}`;
    let ops = conns.get(key);
    if (!ops) conns.set(key, (ops = []));
    const ts = (pkt.tsSec - sec0) * 1e9 + pkt.tsNsec; // relative: ns since the epoch would lose precision
    ops.push(feed(toServer ? 'client' : 'server', Buffer.from(seg.payload), ts));
  }
  return [...conns.values()];
}

export { prng } from '../../../helpers/session-ops';
