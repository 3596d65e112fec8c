/**
 * MySQL packets as MariaDB/MySQL servers and their clients put them on the
 * wire, for the tests (protocol 4.1, the byte layouts of the protocol docs).
 */
export const CAPS = {
  LONG_PASSWORD: 0x1,
  FOUND_ROWS: 0x2,
  LONG_FLAG: 0x4,
  CONNECT_WITH_DB: 0x8,
  COMPRESS: 0x20,
  LOCAL_FILES: 0x80,
  PROTOCOL_41: 0x200,
  INTERACTIVE: 0x400,
  SSL: 0x800,
  TRANSACTIONS: 0x2000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PS_MULTI_RESULTS: 0x40000,
  PLUGIN_AUTH: 0x80000,
  CONNECT_ATTRS: 0x100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x200000,
  SESSION_TRACK: 0x800000,
  DEPRECATE_EOF: 0x1000000,
} as const;

/** What a MySQL 8 server offers (everything a client may ask for). */
export const SERVER_CAPS = 0xffffffff & ~CAPS.COMPRESS & ~0x04000000;
/** A libmysql 8 client: DEPRECATE_EOF, session tracking, plugin auth. */
export const CLIENT_CAPS_8 =
  CAPS.LONG_PASSWORD |
  CAPS.FOUND_ROWS |
  CAPS.LONG_FLAG |
  CAPS.CONNECT_WITH_DB |
  CAPS.LOCAL_FILES |
  CAPS.PROTOCOL_41 |
  CAPS.INTERACTIVE |
  CAPS.TRANSACTIONS |
  CAPS.SECURE_CONNECTION |
  CAPS.MULTI_STATEMENTS |
  CAPS.MULTI_RESULTS |
  CAPS.PS_MULTI_RESULTS |
  CAPS.PLUGIN_AUTH |
  CAPS.CONNECT_ATTRS |
  CAPS.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CAPS.SESSION_TRACK |
  CAPS.DEPRECATE_EOF;
/** An older client (mysql2, libmariadb): no DEPRECATE_EOF. */
export const CLIENT_CAPS_OLD = CLIENT_CAPS_8 & ~CAPS.DEPRECATE_EOF & ~CAPS.SESSION_TRACK;

export const STATUS_AUTOCOMMIT = 0x0002;
export const STATUS_MORE_RESULTS = 0x0008;
export const STATUS_SESSION_STATE_CHANGED = 0x4000;

export function packet(seq: number, payload: Buffer | string): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const h = Buffer.alloc(4);
  h.writeUIntLE(p.length, 0, 3);
  h[3] = seq & 0xff;
  return Buffer.concat([h, p]);
}

export function lenenc(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n < 0x1000000) {
    const b = Buffer.alloc(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

export function lenencStr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([lenenc(b.length), b]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

const z = (s: string) => Buffer.from(s + '\0', 'latin1');

export const SCRAMBLE = Buffer.from('4f3a2b1c0d5e6f708192a3b4c5d6e7f8091a2b3c', 'hex');

/** HandshakeV10 (sequence 0). */
export function greeting(version = '8.0.36', caps = SERVER_CAPS, plugin = 'caching_sha2_password'): Buffer {
  return packet(
    0,
    Buffer.concat([
      Buffer.from([10]),
      z(version),
      u32(42),
      SCRAMBLE.subarray(0, 8),
      Buffer.from([0]),
      u16(caps & 0xffff),
      Buffer.from([0xff]),
      u16(STATUS_AUTOCOMMIT),
      u16(caps >>> 16),
      Buffer.from([21]),
      Buffer.alloc(10),
      SCRAMBLE.subarray(8, 20),
      Buffer.from([0]),
      z(plugin),
    ]),
  );
}

/** The secret the tests look for in the output: it must never be exported. */
export const AUTH_RESPONSE = Buffer.from('5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7', 'hex');

/** HandshakeResponse41 (sequence 1). */
export function handshakeResponse(caps: number, user: string, database?: string, auth = AUTH_RESPONSE): Buffer {
  const c = database ? caps | CAPS.CONNECT_WITH_DB : caps & ~CAPS.CONNECT_WITH_DB;
  const parts = [u32(c), u32(16 * 1024 * 1024), Buffer.from([0xff]), Buffer.alloc(23), z(user)];
  if (c & CAPS.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencStr(auth));
  else parts.push(Buffer.from([auth.length]), auth);
  if (database) parts.push(z(database));
  if (c & CAPS.PLUGIN_AUTH) parts.push(z('caching_sha2_password'));
  if (c & CAPS.CONNECT_ATTRS) {
    const attrs = Buffer.concat([lenencStr('_client_name'), lenencStr('libmysql'), lenencStr('_os'), lenencStr('Linux')]);
    parts.push(lenencStr(attrs));
  }
  return packet(1, Buffer.concat(parts));
}

/** SSLRequest (sequence 1): the first 32 bytes of a HandshakeResponse41. */
export function sslRequest(caps: number): Buffer {
  return packet(1, Buffer.concat([u32(caps | CAPS.SSL), u32(16 * 1024 * 1024), Buffer.from([0xff]), Buffer.alloc(23)]));
}

export function ok(seq: number, affected = 0, insertId = 0, status = STATUS_AUTOCOMMIT, warnings = 0, header = 0x00, tail?: Buffer): Buffer {
  return packet(seq, Buffer.concat([Buffer.from([header]), lenenc(affected), lenenc(insertId), u16(status), u16(warnings), tail ?? Buffer.alloc(0)]));
}

/** OK carrying a SESSION_TRACK_SCHEMA change (what MySQL 8 sends for USE with CLIENT_SESSION_TRACK). */
export function okSchemaChange(seq: number, schema: string): Buffer {
  const entry = Buffer.concat([Buffer.from([1]), lenencStr(lenencStr(schema))]);
  const tail = Buffer.concat([lenencStr(''), lenencStr(entry)]);
  return ok(seq, 0, 0, STATUS_AUTOCOMMIT | STATUS_SESSION_STATE_CHANGED, 0, 0x00, tail);
}

export function err(seq: number, code: number, state: string, message: string): Buffer {
  return packet(seq, Buffer.concat([Buffer.from([0xff]), u16(code), Buffer.from('#' + state, 'latin1'), Buffer.from(message, 'utf8')]));
}

export function eof(seq: number, status = STATUS_AUTOCOMMIT, warnings = 0): Buffer {
  return packet(seq, Buffer.concat([Buffer.from([0xfe]), u16(warnings), u16(status)]));
}

/** OK with the 0xfe header that ends a result set under CLIENT_DEPRECATE_EOF. */
export function okEof(seq: number, status = STATUS_AUTOCOMMIT, warnings = 0): Buffer {
  return ok(seq, 0, 0, status, warnings, 0xfe);
}

export const T = {
  LONG: 0x03,
  DOUBLE: 0x05,
  NULL: 0x06,
  LONGLONG: 0x08,
  DATETIME: 0x0c,
  VAR_STRING: 0xfd,
  TINY: 0x01,
} as const;

export function columnCount(seq: number, n: number): Buffer {
  return packet(seq, lenenc(n));
}

export function columnDef(seq: number, schema: string, table: string, name: string, type: number = T.VAR_STRING, flags = 0): Buffer {
  return packet(
    seq,
    Buffer.concat([
      lenencStr('def'),
      lenencStr(schema),
      lenencStr(table),
      lenencStr(table),
      lenencStr(name),
      lenencStr(name),
      Buffer.from([0x0c]),
      u16(45),
      u32(255),
      Buffer.from([type]),
      u16(flags),
      Buffer.from([0]),
      u16(0),
    ]),
  );
}

export function textRow(seq: number, cells: Array<string | null>): Buffer {
  return packet(seq, Buffer.concat(cells.map((c) => (c === null ? Buffer.from([0xfb]) : lenencStr(c)))));
}

export type Value = { type: number; value: number | bigint | string | null | Date; unsigned?: boolean };

function binValue(v: Value): Buffer {
  switch (v.type) {
    case T.TINY:
      return Buffer.from([Number(v.value) & 0xff]);
    case T.LONG: {
      const b = Buffer.alloc(4);
      if (v.unsigned) b.writeUInt32LE(Number(v.value));
      else b.writeInt32LE(Number(v.value));
      return b;
    }
    case T.LONGLONG: {
      const b = Buffer.alloc(8);
      if (v.unsigned) b.writeBigUInt64LE(BigInt(v.value as bigint));
      else b.writeBigInt64LE(BigInt(v.value as bigint));
      return b;
    }
    case T.DOUBLE: {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(Number(v.value));
      return b;
    }
    case T.DATETIME: {
      const d = v.value as Date;
      const b = Buffer.alloc(8);
      b[0] = 7;
      b.writeUInt16LE(d.getUTCFullYear(), 1);
      b[3] = d.getUTCMonth() + 1;
      b[4] = d.getUTCDate();
      b[5] = d.getUTCHours();
      b[6] = d.getUTCMinutes();
      b[7] = d.getUTCSeconds();
      return b;
    }
    default:
      return lenencStr(String(v.value));
  }
}

/** Binary-protocol result row (0x00, NULL bitmap with offset 2, values). */
export function binaryRow(seq: number, values: Value[]): Buffer {
  const bitmap = Buffer.alloc((values.length + 7 + 2) >> 3);
  values.forEach((v, i) => {
    if (v.value === null) bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7);
  });
  return packet(seq, Buffer.concat([Buffer.from([0]), bitmap, ...values.filter((v) => v.value !== null).map(binValue)]));
}

export function comQuery(sql: string): Buffer {
  return packet(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(sql, 'utf8')]));
}

export function comInitDb(db: string): Buffer {
  return packet(0, Buffer.concat([Buffer.from([0x02]), Buffer.from(db, 'utf8')]));
}

export function comSimple(cmd: number): Buffer {
  return packet(0, Buffer.from([cmd]));
}

export const COM_QUIT = 0x01;
export const COM_PING = 0x0e;
export const COM_STATISTICS = 0x09;

export function comStmtPrepare(sql: string): Buffer {
  return packet(0, Buffer.concat([Buffer.from([0x16]), Buffer.from(sql, 'utf8')]));
}

export function prepareOk(seq: number, id: number, columns: number, params: number): Buffer {
  return packet(seq, Buffer.concat([Buffer.from([0]), u32(id), u16(columns), u16(params), Buffer.from([0]), u16(0)]));
}

/** COM_STMT_EXECUTE; `types` false: new-params-bound flag 0 (the types of the previous execute apply). */
export function comStmtExecute(id: number, values: Value[], sendTypes = true, flags = 0): Buffer {
  const parts = [Buffer.from([0x17]), u32(id), Buffer.from([flags]), u32(1)];
  if (values.length > 0) {
    const bitmap = Buffer.alloc((values.length + 7) >> 3);
    values.forEach((v, i) => {
      if (v.value === null) bitmap[i >> 3] |= 1 << (i & 7);
    });
    parts.push(bitmap, Buffer.from([sendTypes ? 1 : 0]));
    if (sendTypes) for (const v of values) parts.push(Buffer.from([v.value === null ? T.NULL : v.type, v.unsigned ? 0x80 : 0]));
    for (const v of values) if (v.value !== null) parts.push(binValue(v));
  }
  return packet(0, Buffer.concat(parts));
}

export function comStmtClose(id: number): Buffer {
  return packet(0, Buffer.concat([Buffer.from([0x19]), u32(id)]));
}

export function comStmtReset(id: number): Buffer {
  return packet(0, Buffer.concat([Buffer.from([0x1a]), u32(id)]));
}

/** A text result set: count, definitions, [EOF], rows, EOF or OK(0xfe). Starts at sequence `seq`. */
export function resultSet(
  seq: number,
  cols: Array<{ schema: string; table: string; name: string; type?: number }>,
  rows: Array<Array<string | null>>,
  opts: { deprecateEof?: boolean; status?: number } = {},
): Buffer {
  const out: Buffer[] = [columnCount(seq++, cols.length)];
  for (const c of cols) out.push(columnDef(seq++, c.schema, c.table, c.name, c.type));
  if (!opts.deprecateEof) out.push(eof(seq++));
  for (const r of rows) out.push(textRow(seq++, r));
  out.push(opts.deprecateEof ? okEof(seq++, opts.status) : eof(seq++, opts.status));
  return Buffer.concat(out);
}

export { prng } from '../../../helpers/session-ops';
