/**
 * Decoders for the payloads of single MySQL packets. All of them read from a
 * (possibly truncated) payload head and never throw: a field that is not in
 * the bytes at hand reads as undefined.
 */
import { CAP, STATUS, TYPE, UNSIGNED_FLAG } from './constants';

/** A read position in a payload; every read is bounds-checked. */
export class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  u8(): number | undefined {
    if (this.pos + 1 > this.buf.length) return undefined;
    return this.buf[this.pos++];
  }

  u16(): number | undefined {
    if (this.pos + 2 > this.buf.length) return undefined;
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u24(): number | undefined {
    if (this.pos + 3 > this.buf.length) return undefined;
    const v = this.buf.readUIntLE(this.pos, 3);
    this.pos += 3;
    return v;
  }

  u32(): number | undefined {
    if (this.pos + 4 > this.buf.length) return undefined;
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** 8-byte unsigned integer as a number (exact up to 2^53). */
  u64(): number | undefined {
    if (this.pos + 8 > this.buf.length) return undefined;
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }

  skip(n: number): boolean {
    if (this.pos + n > this.buf.length) return false;
    this.pos += n;
    return true;
  }

  /** Length-encoded integer; null for the NULL marker (0xfb), undefined when cut or invalid (0xff). */
  lenenc(): number | null | undefined {
    const first = this.u8();
    if (first === undefined) return undefined;
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) return this.u24();
    if (first === 0xfe) return this.u64();
    return undefined;
  }

  bytes(n: number): Buffer | undefined {
    if (n < 0 || this.pos + n > this.buf.length) return undefined;
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Length-encoded string (undefined when cut; null for NULL). */
  lenencBytes(): Buffer | null | undefined {
    const n = this.lenenc();
    if (n === null || n === undefined) return n;
    return this.bytes(n);
  }

  lenencString(): string | undefined {
    const b = this.lenencBytes();
    return b ? b.toString('utf8') : undefined;
  }

  /** NUL-terminated bytes (undefined when the NUL is not in the buffer). */
  nulBytes(): Buffer | undefined {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) return undefined;
    const b = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return b;
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }
}

// ---- connection phase -------------------------------------------------------------

export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  connectionId?: number;
  capabilities?: number;
  /** MariaDB's extended capabilities (when the CLIENT_MYSQL bit is clear). */
  mariadbCapabilities?: number;
}

/** HandshakeV10 (first server packet). */
export function parseGreeting(p: Buffer): Greeting | undefined {
  const c = new Cursor(p);
  const protocolVersion = c.u8();
  if (protocolVersion !== 10) return undefined;
  const version = c.nulBytes();
  if (!version) return undefined;
  const g: Greeting = { protocolVersion, serverVersion: version.toString('latin1') };
  g.connectionId = c.u32();
  if (!c.skip(8 + 1)) return g;
  const low = c.u16();
  if (low === undefined) return g;
  let caps = low;
  if (c.skip(1 + 2)) {
    const high = c.u16();
    if (high !== undefined) caps = (caps | (high << 16)) >>> 0;
  }
  g.capabilities = caps;
  // auth data length(1), reserved(6), MariaDB extended capabilities(4)
  if (!(caps & CAP.CLIENT_MYSQL) && c.skip(1 + 6)) g.mariadbCapabilities = c.u32();
  return g;
}

export interface HandshakeResponse {
  capabilities: number;
  /** Only the SSLRequest prefix: TLS follows. */
  sslRequest: boolean;
  /** MariaDB's extended capabilities (when the CLIENT_MYSQL bit is clear). */
  mariadbCapabilities?: number;
  user?: string;
  database?: string;
  authPlugin?: string;
}

/**
 * HandshakeResponse41 / SSLRequest (client, sequence 1). The auth response is
 * skipped, never decoded.
 */
export function parseHandshakeResponse(p: Buffer, length: number): HandshakeResponse | undefined {
  const c = new Cursor(p);
  const low = c.u16();
  if (low === undefined) return undefined;
  if (!(low & CAP.PROTOCOL_41)) {
    // HandshakeResponse320: caps(2) max-packet(3) user NUL ...
    const r: HandshakeResponse = { capabilities: low, sslRequest: false };
    if (low & CAP.SSL && length <= 5) r.sslRequest = true;
    if (!c.skip(3)) return r;
    const user = c.nulBytes();
    if (user) r.user = user.toString('utf8');
    return r;
  }
  const high = c.u16();
  if (high === undefined) return undefined;
  const caps = (low | (high << 16)) >>> 0;
  const r: HandshakeResponse = { capabilities: caps, sslRequest: false };
  if (!(caps & CAP.CLIENT_MYSQL) && p.length >= 32) r.mariadbCapabilities = p.readUInt32LE(28);
  if (length <= 32) {
    r.sslRequest = (caps & CAP.SSL) !== 0;
    return r;
  }
  if (!c.skip(4 + 1 + 23)) return r;
  const user = c.nulBytes();
  if (!user) return r;
  r.user = user.toString('utf8');
  // auth response: skipped
  if (caps & CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    const n = c.lenenc();
    if (n === undefined || n === null || !c.skip(n)) return r;
  } else if (caps & CAP.SECURE_CONNECTION) {
    const n = c.u8();
    if (n === undefined || !c.skip(n)) return r;
  } else if (!c.nulBytes()) return r;
  if (caps & CAP.CONNECT_WITH_DB) {
    const db = c.nulBytes();
    if (!db) return r;
    if (db.length > 0) r.database = db.toString('utf8');
  }
  if (caps & CAP.PLUGIN_AUTH) {
    const plugin = c.nulBytes();
    if (plugin) r.authPlugin = plugin.toString('latin1');
  }
  return r;
}

export interface ChangeUser {
  user?: string;
  database?: string;
}

/** COM_CHANGE_USER payload (after the command byte is included: p[0] = 0x11). */
export function parseChangeUser(p: Buffer, capabilities: number | undefined): ChangeUser {
  const c = new Cursor(p, 1);
  const out: ChangeUser = {};
  const user = c.nulBytes();
  if (!user) return out;
  out.user = user.toString('utf8');
  const secure = capabilities === undefined || (capabilities & CAP.SECURE_CONNECTION) !== 0;
  if (secure) {
    const n = c.u8();
    if (n === undefined || !c.skip(n)) return out;
  } else if (!c.nulBytes()) return out;
  const db = c.nulBytes();
  if (db && db.length > 0) out.database = db.toString('utf8');
  return out;
}

// ---- generic response packets ---------------------------------------------------

export interface OkPacket {
  affectedRows: number;
  insertId: number;
  status: number;
  warnings: number;
  /** New default schema announced through session-state tracking. */
  schema?: string;
}

/** OK packet (header 0x00, or 0xfe when it ends a result set under CLIENT_DEPRECATE_EOF). */
export function parseOk(p: Buffer, capabilities: number | undefined): OkPacket | undefined {
  const c = new Cursor(p, 1);
  const affectedRows = c.lenenc();
  const insertId = c.lenenc();
  if (affectedRows === undefined || affectedRows === null || insertId === undefined || insertId === null) return undefined;
  const ok: OkPacket = { affectedRows, insertId, status: c.u16() ?? 0, warnings: c.u16() ?? 0 };
  if (ok.status & STATUS.SESSION_STATE_CHANGED && c.left > 0 && (capabilities === undefined || capabilities & CAP.SESSION_TRACK)) {
    const info = c.lenenc(); // human readable info
    if (info === undefined || info === null || !c.skip(info)) return ok;
    const total = c.lenenc();
    if (total === undefined || total === null) return ok;
    const end = Math.min(c.buf.length, c.pos + total);
    while (c.pos < end) {
      const type = c.u8();
      const data = c.lenencBytes();
      if (type === undefined || !data) break;
      if (type === 1 /* SESSION_TRACK_SCHEMA */) {
        const s = new Cursor(data).lenencBytes();
        if (s) ok.schema = s.toString('utf8');
      }
    }
  }
  return ok;
}

export interface ErrPacket {
  code: number;
  sqlState?: string;
  message: string;
}

/** ERR packet (header 0xff). */
export function parseErr(p: Buffer): ErrPacket {
  const code = p.length >= 3 ? p.readUInt16LE(1) : 0;
  if (p.length >= 9 && p[3] === 0x23 /* '#' */) {
    return { code, sqlState: p.toString('latin1', 4, 9), message: p.toString('utf8', 9) };
  }
  return { code, message: p.length > 3 ? p.toString('utf8', 3) : '' };
}

/** Status flags of an EOF packet (0xfe, warnings(2), status(2)). */
export function eofStatus(p: Buffer): number {
  return p.length >= 5 ? p.readUInt16LE(3) : 0;
}

export interface ColumnDef {
  schema: string;
  table: string;
  name: string;
  type: number;
  flags: number;
}

/**
 * Column definition (protocol 4.1). `withName` also decodes the column name.
 * `extended`: MariaDB's extended type info (a string before the fixed fields) was
 * negotiated; undefined when unknown (then told by the bytes).
 */
export function parseColumnDef(p: Buffer, withName: boolean, extended?: boolean): ColumnDef | undefined {
  const c = new Cursor(p);
  if (!c.lenencBytes()) return undefined; // catalog ("def")
  const schema = c.lenencBytes();
  const table = c.lenencBytes();
  if (!schema || table === undefined || table === null) return undefined;
  const col: ColumnDef = { schema: schema.toString('utf8'), table: table.toString('utf8'), name: '', type: TYPE.VAR_STRING, flags: 0 };
  if (!c.lenencBytes()) return col; // org_table
  const name = c.lenencBytes();
  if (!name) return col;
  if (withName) col.name = name.toString('utf8');
  if (!c.lenencBytes()) return col; // org_name
  // the fixed part is 0x0c and 12 bytes (COM_FIELD_LIST adds default values)
  if (extended === true || (extended === undefined && c.left !== 13 && c.buf[c.pos] !== 0x0c)) {
    if (!c.lenencBytes()) return col;
  }
  const fixed = c.lenenc();
  if (fixed === undefined || fixed === null || c.left < 10) return col;
  c.skip(2 + 4); // character set, column length
  col.type = c.u8()!;
  col.flags = c.u16()!;
  return col;
}

// ---- rows -----------------------------------------------------------------------

/**
 * A text-protocol row, cut like Packetbeat does: cells are taken while the row's
 * text is shorter than maxRowLength, the last one cut to fit.
 */
export function decodeTextRow(p: Buffer, maxRowLength: number): string[] {
  const c = new Cursor(p);
  const row: string[] = [];
  let rowLen = 0;
  while (c.left > 0) {
    let cell: Buffer;
    if (c.buf[c.pos] === 0xfb) {
      c.pos++;
      cell = NULL_TEXT;
    } else {
      const n = c.lenenc();
      if (n === undefined || n === null) break;
      // a head cut inside the cell still has what the row text needs (it is cut too)
      const avail = Math.min(n, Math.max(0, c.left));
      cell = c.buf.subarray(c.pos, c.pos + avail);
      c.pos += avail;
      if (avail < n && maxRowLength - rowLen > avail) {
        // the rest of the cell was not captured: what there is, then stop
        if (rowLen < maxRowLength) row.push(cell.toString('utf8'));
        break;
      }
    }
    if (rowLen < maxRowLength) {
      if (rowLen + cell.length > maxRowLength) cell = cell.subarray(0, maxRowLength - rowLen);
      row.push(cell.toString('utf8'));
      rowLen += cell.length;
    }
  }
  return row;
}

const NULL_TEXT = Buffer.from('NULL');

export interface ParamType {
  type: number;
  unsigned: boolean;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** One value of the binary protocol as text; `cursor` moves past it. undefined when cut or unknown. */
export function decodeBinaryValue(c: Cursor, t: ParamType, maxLength: number): string | undefined {
  switch (t.type) {
    case TYPE.NULL:
      return 'NULL';
    case TYPE.TINY: {
      const v = c.u8();
      if (v === undefined) return undefined;
      return String(t.unsigned ? v : (v << 24) >> 24);
    }
    case TYPE.SHORT:
    case TYPE.YEAR: {
      const v = c.u16();
      if (v === undefined) return undefined;
      return String(t.unsigned || t.type === TYPE.YEAR ? v : (v << 16) >> 16);
    }
    case TYPE.LONG:
    case TYPE.INT24: {
      const v = c.u32();
      if (v === undefined) return undefined;
      return String(t.unsigned ? v : v | 0);
    }
    case TYPE.LONGLONG: {
      if (c.left < 8) return undefined;
      const v = t.unsigned ? c.buf.readBigUInt64LE(c.pos) : c.buf.readBigInt64LE(c.pos);
      c.pos += 8;
      return v.toString();
    }
    case TYPE.FLOAT: {
      if (c.left < 4) return undefined;
      const v = c.buf.readFloatLE(c.pos);
      c.pos += 4;
      return String(Number(v.toPrecision(7)));
    }
    case TYPE.DOUBLE: {
      if (c.left < 8) return undefined;
      const v = c.buf.readDoubleLE(c.pos);
      c.pos += 8;
      return String(v);
    }
    case TYPE.DATE:
    case TYPE.DATETIME:
    case TYPE.TIMESTAMP:
    case TYPE.NEWDATE: {
      const n = c.u8();
      if (n === undefined) return undefined;
      const b = c.bytes(n);
      if (!b) return undefined;
      if (n < 4) return '0000-00-00' + (t.type === TYPE.DATE ? '' : ' 00:00:00');
      let s = `${pad(b.readUInt16LE(0), 4)}-${pad(b[2], 2)}-${pad(b[3], 2)}`;
      if (t.type === TYPE.DATE) return s;
      s += n >= 7 ? ` ${pad(b[4], 2)}:${pad(b[5], 2)}:${pad(b[6], 2)}` : ' 00:00:00';
      if (n >= 11) s += `.${pad(b.readUInt32LE(7), 6)}`;
      return s;
    }
    case TYPE.TIME: {
      const n = c.u8();
      if (n === undefined) return undefined;
      const b = c.bytes(n);
      if (!b) return undefined;
      if (n < 8) return '00:00:00';
      const hours = b.readUInt32LE(1) * 24 + b[5];
      let s = `${b[0] ? '-' : ''}${pad(hours, 2)}:${pad(b[6], 2)}:${pad(b[7], 2)}`;
      if (n >= 12) s += `.${pad(b.readUInt32LE(8), 6)}`;
      return s;
    }
    case TYPE.DECIMAL:
    case TYPE.NEWDECIMAL:
    case TYPE.VARCHAR:
    case TYPE.BIT:
    case TYPE.JSON:
    case TYPE.ENUM:
    case TYPE.SET:
    case TYPE.TINY_BLOB:
    case TYPE.MEDIUM_BLOB:
    case TYPE.LONG_BLOB:
    case TYPE.BLOB:
    case TYPE.VAR_STRING:
    case TYPE.STRING:
    case TYPE.GEOMETRY: {
      const n = c.lenenc();
      if (n === undefined || n === null) return undefined;
      const avail = Math.min(n, c.left);
      const b = c.buf.subarray(c.pos, c.pos + Math.min(avail, maxLength));
      if (avail < n) {
        // cut head: what is there, then stop decoding
        c.pos = c.buf.length + 1;
        return b.toString('utf8');
      }
      c.pos += n;
      return b.toString('utf8');
    }
    default:
      return undefined;
  }
}

/**
 * A binary-protocol row (0x00, NULL bitmap with offset 2, values), cut to
 * maxRowLength like text rows.
 */
export function decodeBinaryRow(p: Buffer, types: readonly ParamType[], maxRowLength: number): string[] {
  const n = types.length;
  const bitmap = (n + 7 + 2) >> 3;
  const c = new Cursor(p, 1);
  const nulls = c.bytes(bitmap);
  const row: string[] = [];
  if (!nulls) return row;
  let rowLen = 0;
  for (let i = 0; i < n; i++) {
    const bit = i + 2;
    let text: string | undefined;
    if (nulls[bit >> 3] & (1 << (bit & 7))) text = 'NULL';
    else {
      text = decodeBinaryValue(c, types[i], maxRowLength);
      if (text === undefined) break;
    }
    if (rowLen < maxRowLength) {
      const len = Buffer.byteLength(text);
      if (rowLen + len > maxRowLength) text = Buffer.from(text).subarray(0, maxRowLength - rowLen).toString('utf8');
      row.push(text);
      rowLen += Math.min(len, maxRowLength - rowLen);
    }
    if (c.pos > c.buf.length) break;
  }
  return row;
}

// ---- prepared statements ----------------------------------------------------------

export interface PrepareOk {
  statementId: number;
  numColumns: number;
  numParams: number;
}

/** COM_STMT_PREPARE_OK (0x00, id(4), columns(2), params(2), filler, warnings). */
export function parsePrepareOk(p: Buffer): PrepareOk | undefined {
  if (p.length < 9 || p[0] !== 0) return undefined;
  return { statementId: p.readUInt32LE(1), numColumns: p.readUInt16LE(5), numParams: p.readUInt16LE(7) };
}

export interface ExecuteParams {
  /** Decoded values (undefined when the types are not known). */
  values?: string[];
  /** Types sent with this execute (new-params-bound flag set). */
  types?: ParamType[];
}

/**
 * COM_STMT_EXECUTE: id(4) flags(1) iterations(4) [NULL bitmap, new-params-bound,
 * types, values]. `knownTypes` are those bound by an earlier execute.
 */
export function parseExecuteParams(
  p: Buffer,
  numParams: number,
  knownTypes: readonly ParamType[] | undefined,
  queryAttributes: boolean,
  maxLength: number,
): ExecuteParams {
  const c = new Cursor(p, 1 + 4);
  const flags = c.u8();
  if (flags === undefined || !c.skip(4)) return {};
  let n = numParams;
  if (queryAttributes && (numParams > 0 || flags & 0x08)) {
    const count = c.lenenc();
    if (count === undefined || count === null) return {};
    n = count;
  }
  if (n <= 0) return { values: [] };
  const nulls = c.bytes((n + 7) >> 3);
  const bound = c.u8();
  if (!nulls || bound === undefined) return {};
  let types = knownTypes;
  let sent: ParamType[] | undefined;
  if (bound === 1) {
    sent = [];
    for (let i = 0; i < n; i++) {
      const type = c.u8();
      const flag = c.u8();
      if (type === undefined || flag === undefined) return {};
      sent.push({ type, unsigned: (flag & 0x80) !== 0 });
      // parameter name (query attributes)
      if (queryAttributes && !c.lenencBytes()) return {};
    }
    types = sent;
  }
  if (!types || types.length !== n) return { types: sent };
  const values: string[] = [];
  for (let i = 0; i < n; i++) {
    if (nulls[i >> 3] & (1 << (i & 7))) {
      values.push('NULL');
      continue;
    }
    const v = decodeBinaryValue(c, types[i], maxLength);
    if (v === undefined) break;
    values.push(v);
    if (c.pos > c.buf.length) break;
  }
  return { values, types: sent };
}

// ---- SQL text ---------------------------------------------------------------------

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c]);

/**
 * The statement's verb: the first word, upper-cased, after whitespace, comments
 * and opening parentheses ("  select" → "SELECT", "/* x *\/ SELECT" → "SELECT",
 * "/*!40101 SET ..." → "SET", "(SELECT ...) UNION" → "SELECT").
 */
export function sqlMethod(query: string): string {
  let i = 0;
  const n = query.length;
  for (;;) {
    while (i < n && (SPACE.has(query.charCodeAt(i)) || query[i] === '(')) i++;
    if (query.startsWith('/*', i)) {
      if (query[i + 2] === '!' || (query[i + 2] === 'M' && query[i + 3] === '!')) {
        // executable comment: its content is SQL
        i += query[i + 2] === '!' ? 3 : 4;
        while (i < n && query.charCodeAt(i) >= 0x30 && query.charCodeAt(i) <= 0x39) i++;
        continue;
      }
      const end = query.indexOf('*/', i + 2);
      if (end < 0) break;
      i = end + 2;
      continue;
    }
    if (query.startsWith('-- ', i) || query.startsWith('--\t', i) || query[i] === '#') {
      const end = query.indexOf('\n', i);
      if (end < 0) {
        i = n;
        break;
      }
      i = end + 1;
      continue;
    }
    break;
  }
  let j = i;
  while (j < n && !SPACE.has(query.charCodeAt(j)) && query[j] !== '(' && query[j] !== ';' && query[j] !== '/') j++;
  if (j === i) {
    // Packetbeat's rule as the fallback: first word of the trimmed text
    const t = query.trim();
    const m = /^\S+/.exec(t);
    return m ? m[0].toUpperCase() : '';
  }
  return query.slice(i, j).toUpperCase();
}

/** Trim like Packetbeat (spaces, tabs, CR, LF at both ends). */
export function trimQuery(q: string): string {
  return q.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

/** `USE db` / "USE `db`" → db */
export function useStatementSchema(query: string): string | undefined {
  const m = /^\s*use\s+(`(?:[^`]|``)+`|[^\s;`]+)\s*;?\s*$/i.exec(query);
  if (!m) return undefined;
  const name = m[1];
  return name.startsWith('`') ? name.slice(1, -1).replace(/``/g, '`') : name;
}
