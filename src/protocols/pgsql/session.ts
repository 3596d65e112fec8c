/**
 * PostgreSQL on one connection: frames both directions and pairs what the
 * client asked with what the server answered.
 *
 * Every client message that the server answers becomes an *item* in a FIFO:
 * a simple-query statement (answered by CommandComplete, EmptyQueryResponse
 * or ErrorResponse), the end of a simple query (ReadyForQuery), Parse
 * (ParseComplete), Bind (BindComplete), Describe (RowDescription/NoData),
 * Close (CloseComplete), Execute (CommandComplete/EmptyQueryResponse/
 * PortalSuspended), Sync (ReadyForQuery), FunctionCall (FunctionCallResponse).
 * Server messages answer items in order; rows and other content go to the
 * transaction of the item at the head. ReadyForQuery is the resynchronisation
 * point: it answers the first Sync (or simple-query end) in the FIFO, and
 * whatever is still before it was either skipped by the server after an
 * error or lost.
 *
 * Transactions: one per statement of a simple query (several ';'-separated
 * statements in one Query give several, each owning its slice of the
 * message's bytes so that stream offsets stay distinct), and one per
 * Execute in the extended protocol. An extended *group* is the messages from
 * the end of the previous group up to and including its Execute (Parse, Bind,
 * Describe, Close), plus the Sync/Flush right after it (the client waits for
 * answers from there, so the request is complete); its SQL comes from the
 * Parse of the statement the Bind names (remembered per connection, bounded).
 * A group without Execute makes a transaction only when the server reports an
 * error for it (a failed Parse, say). After an error the server skips the
 * rest up to Sync: those statements did not run and make no transaction.
 *
 * Response bytes exclude ReadyForQuery, ParseComplete and BindComplete (what
 * Packetbeat counts). COPY: the client's CopyData/CopyDone/CopyFail belong
 * to the COPY's request, the server's CopyData to its response.
 */
import type { MessageSpan, ProtocolSession, ProtocolTransaction, Sender, TransactionSink } from '../types';
import {
  CODE_CANCEL,
  CODE_GSSENC,
  CODE_SSL,
  Framer,
  FramerMode,
  type Frame,
  T_SSL_REPLY,
  T_STARTUP,
  T_TLS,
} from './framer';
import { splitStatements } from './sql';
import type { PgsqlData, PgsqlError, PgsqlOptions, PgsqlRequest, PgsqlResponse } from './types';

/** Transactions waiting for their answer, per connection. */
const MAX_OPEN = 1024;
/** Client messages waiting for their answer, per connection. */
const MAX_ITEMS = 4096;
/** Portals remembered per connection. */
const MAX_PORTALS = 64;

const KEEP_NAMES = 1100;
const KEEP_BIND = 4096;
const KEEP_STARTUP = 8192;
const KEEP_TAG = 256;
const KEEP_ERROR = 8192;
const KEEP_ROW_DESCRIPTION = 64 * 1024;

// message type bytes
const c = (s: string) => s.charCodeAt(0);
const M_QUERY = c('Q');
const M_PARSE = c('P');
const M_BIND = c('B');
const M_DESCRIBE = c('D');
const M_EXECUTE = c('E');
const M_CLOSE = c('C');
const M_SYNC = c('S');
const M_FLUSH = c('H');
const M_FUNCTION_CALL = c('F');
const M_PASSWORD = c('p');
const M_COPY_DATA = c('d');
const M_COPY_DONE = c('c');
const M_COPY_FAIL = c('f');

const B_READY = c('Z');
const B_PARSE_COMPLETE = c('1');
const B_BIND_COMPLETE = c('2');
const B_CLOSE_COMPLETE = c('3');
const B_NO_DATA = c('n');
const B_ROW_DESCRIPTION = c('T');
const B_PARAMETER_DESCRIPTION = c('t');
const B_COMMAND_COMPLETE = c('C');
const B_EMPTY_QUERY = c('I');
const B_PORTAL_SUSPENDED = c('s');
const B_ERROR = c('E');
const B_DATA_ROW = c('D');
const B_COPY_IN = c('G');
const B_COPY_OUT = c('H');
const B_COPY_BOTH = c('W');
const B_COPY_DATA = c('d');
const B_FUNCTION_RESULT = c('V');

const LOSS_REQUEST = 'Packet loss while capturing the request';
const LOSS_RESPONSE = 'Packet loss while capturing the response';
const UNKNOWN_QUERY = 'The actual query being used is unknown';

const enum State {
  Open,
  Emitted,
  Dropped,
}

interface Span {
  startNs: number;
  endNs: number;
  bytes: number;
  offset: number;
}

interface Txn {
  req: Span;
  request: PgsqlRequest;
  res: Span | null;
  response: PgsqlResponse | null;
  notes: string[];
  state: State;
  /** The server finished answering it. */
  done: boolean;
  /** No more client bytes belong to its request. */
  reqClosed: boolean;
  /** Extended groups. */
  parseSql?: string;
  parseTruncated?: boolean;
  unknownStatement: boolean;
  hasExecute: boolean;
  ended: boolean;
  outstanding: number;
  /** Column types and formats (binary columns are rendered specially). */
  colTypes?: number[];
  colFormats?: number[];
  /** Binary formats asked for by Bind (when there is no RowDescription). */
  bindFormats?: number[];
  /** The server direction lost sync while answering it (its end may have been in a gap). */
  resUnsynced: boolean;
}

const enum K {
  Stmt,
  QueryEnd,
  Parse,
  Bind,
  Describe,
  Close,
  Execute,
  Sync,
  Func,
}

interface Item {
  k: K;
  /** The transaction its answer belongs to. */
  txn: Txn | null;
}

/** Items counted in a group's `outstanding`. */
function counted(k: K): boolean {
  return k === K.Parse || k === K.Bind || k === K.Describe || k === K.Close || k === K.Execute;
}

/** Small FIFO with O(1) shift. */
class Fifo<T> {
  private a: T[] = [];
  private h = 0;
  get length(): number {
    return this.a.length - this.h;
  }
  push(v: T): void {
    this.a.push(v);
  }
  at(i: number): T {
    return this.a[this.h + i] as T;
  }
  shift(): T | undefined {
    if (this.h >= this.a.length) return undefined;
    const v = this.a[this.h] as T;
    (this.a as Array<T | undefined>)[this.h] = undefined;
    this.h++;
    if (this.h > 64 && this.h * 2 > this.a.length) {
      this.a = this.a.slice(this.h);
      this.h = 0;
    }
    return v;
  }
  clear(): void {
    this.a = [];
    this.h = 0;
  }
}

/** The NUL-terminated string at buf[pos]: [text, index past the NUL] (end -1 when cut). */
function cstr(buf: Buffer, pos: number): [string, number] {
  const z = buf.indexOf(0, pos);
  if (z < 0) return [buf.toString('utf8', pos), -1];
  return [buf.toString('utf8', pos, z), z + 1];
}

function whitespace(ch: number): boolean {
  return ch === 0x20 || (ch >= 0x09 && ch <= 0x0d);
}

/** Extended-protocol SQL as reported: trimmed, trailing ';' removed. */
function normalizeSql(buf: Buffer, s: number, e: number): string {
  while (s < e && whitespace(buf[s] as number)) s++;
  while (e > s && (whitespace(buf[e - 1] as number) || buf[e - 1] === 0x3b)) e--;
  return buf.toString('utf8', s, e);
}

const TAG_WITH_ROWS = new Set(['INSERT', 'DELETE', 'UPDATE', 'MERGE', 'SELECT', 'MOVE', 'FETCH', 'COPY']);

function rowsFromTag(tag: string): number | undefined {
  const sp = tag.indexOf(' ');
  if (sp < 0 || !TAG_WITH_ROWS.has(tag.slice(0, sp))) return undefined;
  const last = tag.slice(tag.lastIndexOf(' ') + 1);
  if (!/^\d+$/.test(last)) return undefined;
  return Number(last);
}

function parseError(body: Buffer): PgsqlError {
  const err: PgsqlError = {};
  let severity: string | undefined;
  let p = 0;
  while (p < body.length) {
    const code = body[p] as number;
    if (code === 0) break;
    const [text, next] = cstr(body, p + 1);
    switch (code) {
      case 0x53: // S
        severity ??= text;
        break;
      case 0x56: // V (non-localized)
        severity = text;
        break;
      case 0x43: // C
        err.code = text;
        break;
      case 0x4d: // M
        err.message = text;
        break;
      case 0x44: // D
        err.detail = text;
        break;
      case 0x48: // H
        err.hint = text;
        break;
      default:
        break;
    }
    if (next < 0) break;
    p = next;
  }
  if (severity !== undefined) err.severity = severity;
  return err;
}

const OID_BOOL = 16;
const OID_INT8 = 20;
const OID_INT2 = 21;
const OID_INT4 = 23;
const OID_OID = 26;
const OID_FLOAT4 = 700;
const OID_FLOAT8 = 701;

/** A binary-format value as text (common scalar types; others as bytea hex). */
function binaryValue(buf: Buffer, s: number, len: number, avail: number, type: number | undefined): string {
  if (avail === len) {
    if (type === OID_BOOL && len === 1) return buf[s] ? 't' : 'f';
    if (type === OID_INT2 && len === 2) return String(buf.readInt16BE(s));
    if (type === OID_INT4 && len === 4) return String(buf.readInt32BE(s));
    if (type === OID_OID && len === 4) return String(buf.readUInt32BE(s));
    if (type === OID_INT8 && len === 8) return buf.readBigInt64BE(s).toString();
    if (type === OID_FLOAT4 && len === 4) return String(buf.readFloatBE(s));
    if (type === OID_FLOAT8 && len === 8) return String(buf.readDoubleBE(s));
  }
  return '\\x' + buf.toString('hex', s, s + avail);
}

function span(s: Span): MessageSpan {
  return { startNs: s.startNs, endNs: s.endNs, bytes: s.bytes, streamOffset: s.offset };
}

class PgsqlSession implements ProtocolSession {
  private readonly client: Framer;
  private readonly server: Framer;
  private readonly items = new Fifo<Item>();
  private readonly open = new Fifo<Txn>();
  private openCount = 0;
  /** Extended group being built (no Execute yet). */
  private group: Txn | null = null;
  /** Ended group whose request may still take a trailing Sync/Flush (until the next message). */
  private tail: Txn | null = null;
  /** COPY FROM STDIN in progress: the client's CopyData belongs to it. */
  private copyIn: Txn | null = null;
  /** Prepared statements: name → SQL (insertion order = age). */
  private readonly statements = new Map<string, { sql: string; truncated: boolean }>();
  private statementBytes = 0;
  private readonly portals = new Map<string, { statement: string }>();
  private user?: string;
  private database?: string;
  private application?: string;
  private dead = false;
  /** Server bytes were skipped (gap across a message boundary, garbage) and no message framed since. */
  private serverUnsynced = false;
  private readonly reported = new Set<string>();

  private readonly sendResponse: boolean;
  private readonly maxRows: number;
  private readonly maxRowLength: number;
  private readonly maxStatements: number;
  private readonly maxStatementBytes: number;
  private readonly maxQueryBytes: number;

  constructor(
    private readonly sink: TransactionSink<PgsqlData>,
    {
      sendResponse = false,
      maxRows = 10,
      maxRowLength = 1024,
      maxStatements = 1000,
      maxStatementBytes = 1024 * 1024,
      maxQueryBytes = 64 * 1024,
    }: PgsqlOptions = {},
  ) {
    this.sendResponse = sendResponse;
    this.maxRows = Math.max(0, Math.floor(maxRows));
    this.maxRowLength = Math.max(1, Math.floor(maxRowLength));
    this.maxStatements = Math.max(1, Math.floor(maxStatements));
    this.maxStatementBytes = Math.max(1024, Math.floor(maxStatementBytes));
    this.maxQueryBytes = Math.max(256, Math.floor(maxQueryBytes));
    this.client = new Framer(
      true,
      {
        frame: (f) => this.onClient(f),
        skipped: (bytes, lost, ts) => this.onClientSkipped(bytes, lost, ts),
        garbage: (reason, fatal) => this.garbage(reason, fatal),
      },
      (type) => this.clientKeep(type),
    );
    this.server = new Framer(
      false,
      {
        frame: (f) => this.onServer(f),
        skipped: (bytes, lost, ts) => this.onServerSkipped(bytes, lost, ts),
        garbage: (reason, fatal) => this.garbage(reason, fatal),
      },
      (type) => this.serverKeep(type),
    );
  }

  // ---- ProtocolSession ------------------------------------------------------------

  feed(from: Sender, data: Buffer, tsNs: number): void {
    if (this.dead || data.length === 0) return;
    try {
      (from === 'client' ? this.client : this.server).feed(data, tsNs);
    } catch (err) {
      this.internalError(err);
    }
  }

  gap(from: Sender, length: number, tsNs: number, lost = true): void {
    if (this.dead || !(length > 0)) return;
    try {
      (from === 'client' ? this.client : this.server).gap(length, tsNs, lost);
    } catch (err) {
      this.internalError(err);
    }
  }

  end(from: Sender, _tsNs: number): void {
    if (this.dead) return;
    try {
      if (from === 'client') {
        this.client.end();
        this.endGroup();
        this.closeTail();
      } else {
        this.server.end();
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  bufferedBytes(): number {
    return this.client.bufferedBytes() + this.server.bufferedBytes();
  }

  pending(): number {
    return this.openCount;
  }

  expire(beforeNs: number): void {
    try {
      for (let i = 0; i < this.open.length; i++) {
        const t = this.open.at(i);
        if (t.state !== State.Open) continue;
        const last = Math.max(t.req.endNs, t.res ? t.res.endNs : 0);
        if (last >= beforeNs) continue;
        if (t.done || (t.res && t.resUnsynced)) this.emit(t, false);
        else if (this.isNoExecuteGroup(t)) this.drop(t);
        else this.emit(t, true);
      }
      this.compactOpen();
    } catch (err) {
      this.internalError(err);
    }
  }

  close(_tsNs: number): void {
    try {
      this.client.end();
      this.server.end();
      this.endGroup();
      this.closeTail();
      for (let i = 0; i < this.open.length; i++) {
        const t = this.open.at(i);
        if (t.state !== State.Open) continue;
        // an answer whose end was in bytes not captured is reported with what was seen
        if (t.done || (t.res && t.resUnsynced)) this.emit(t, false);
        else if (this.isNoExecuteGroup(t)) this.drop(t);
        else this.emit(t, true);
      }
      this.open.clear();
      this.items.clear();
      this.statements.clear();
      this.portals.clear();
      this.statementBytes = 0;
      this.copyIn = null;
    } catch (err) {
      this.internalError(err);
    }
  }

  // ---- keep policies --------------------------------------------------------------

  private clientKeep(type: number): number {
    switch (type) {
      case M_QUERY:
        return this.maxQueryBytes;
      case M_PARSE:
        return this.maxQueryBytes + KEEP_NAMES;
      case M_BIND:
        return KEEP_BIND;
      case M_DESCRIBE:
      case M_CLOSE:
      case M_EXECUTE:
        return KEEP_NAMES;
      case M_FUNCTION_CALL:
        return 4;
      case T_STARTUP:
        return KEEP_STARTUP;
      default:
        return 0; // password/SASL messages are never kept
    }
  }

  private serverKeep(type: number): number {
    switch (type) {
      case B_ROW_DESCRIPTION:
        // names and formats only matter for `response`; the column count is the first 2 bytes
        return this.sendResponse ? KEEP_ROW_DESCRIPTION : 2;
      case B_DATA_ROW: {
        if (!this.sendResponse) return 0;
        const t = this.resultTxn();
        if (!t || (t.response?.rows?.length ?? 0) >= this.maxRows) return 0;
        const fields = t.response?.numFields;
        return fields === undefined ? 64 * 1024 : 2 + 4 * fields + this.maxRowLength;
      }
      case B_COMMAND_COMPLETE:
        return KEEP_TAG;
      case B_ERROR:
        return KEEP_ERROR;
      default:
        return 0;
    }
  }

  // ---- client messages -----------------------------------------------------------

  private onClient(f: Frame): void {
    const t = f.type;
    if (t === T_STARTUP) return this.onStartup(f);
    if (t === T_TLS) return this.encrypted();
    if (this.copyIn && (t === M_COPY_DATA || t === M_COPY_DONE || t === M_COPY_FAIL)) {
      this.extendRequest(this.copyIn, f);
      if (t !== M_COPY_DATA) this.copyIn = null;
      return;
    }
    if (t === M_SYNC || t === M_FLUSH) {
      // the client now waits for answers: the group before is complete, Sync/Flush included
      this.endGroup();
      const tail = this.tail;
      if (tail) this.extendRequest(tail, f);
      if (t === M_SYNC) this.pushItem(K.Sync, null);
      this.closeTail();
      return;
    }
    if (t === M_PASSWORD) return; // authentication: never decoded
    if (t === M_QUERY || t === M_PARSE || t === M_BIND || t === M_DESCRIBE || t === M_CLOSE || t === M_EXECUTE || t === M_FUNCTION_CALL) {
      this.settleServer();
    }
    switch (t) {
      case M_PARSE:
        this.closeTail();
        return this.onParse(f);
      case M_BIND:
        this.closeTail();
        return this.onBind(f);
      case M_DESCRIBE:
        this.closeTail();
        this.pushItem(K.Describe, this.ensureGroup(f));
        return;
      case M_CLOSE:
        this.closeTail();
        return this.onCloseMessage(f);
      case M_EXECUTE:
        this.closeTail();
        return this.onExecute(f);
      default:
        break;
    }
    this.endGroup();
    this.closeTail();
    if (t === M_QUERY) this.onQuery(f);
    else if (t === M_FUNCTION_CALL) this.onFunctionCall(f);
    // Terminate, stray CopyData/CopyDone/CopyFail: nothing to answer
  }

  private onClientSkipped(bytes: number, lost: boolean, _ts: number): void {
    const t = this.copyIn ?? this.group;
    if (!t || t.state !== State.Open) return;
    t.req.bytes += bytes;
    if (lost) this.note(t, LOSS_REQUEST);
  }

  private onStartup(f: Frame): void {
    switch (f.code) {
      case CODE_SSL:
      case CODE_GSSENC:
        // the server answers with one byte; the client's next packet is untyped again
        this.server.expectSslReply();
        return;
      case CODE_CANCEL:
        // a connection that only cancels another one's query
        this.client.off();
        this.server.off();
        return;
      default:
        break;
    }
    if (f.code >>> 16 !== 3) {
      this.garbage('protocol 2.0 is not decoded', true);
      this.client.off();
      this.server.off();
      return;
    }
    this.client.mode = FramerMode.Typed;
    // parameters: name\0value\0 ... \0
    const b = f.body;
    let p = 0;
    while (p < b.length && b[p] !== 0) {
      const [name, n1] = cstr(b, p);
      if (n1 < 0) break;
      const [value, n2] = cstr(b, n1);
      if (n2 < 0) break;
      if (name === 'user') this.user = value;
      else if (name === 'database') this.database = value;
      else if (name === 'application_name') this.application = value;
      p = n2;
    }
    if (this.database === undefined && this.user !== undefined) this.database = this.user;
  }

  private onQuery(f: Frame): void {
    const b = f.body;
    const z = b.indexOf(0);
    const textEnd = z >= 0 ? z : b.length;
    const truncated = z < 0 && !f.complete;
    const ranges = splitStatements(b, 0, textEnd);
    if (ranges.length === 0) {
      // only spaces or comments: the server answers EmptyQueryResponse
      const t = this.newTxn('simple', f.startNs, f.endNs, f.length, f.offset, f.lost);
      t.request.query = '';
      t.reqClosed = true;
      this.pushItem(K.Stmt, t);
    }
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i]!;
      const from = i === 0 ? 0 : 5 + r.segStart;
      const to = i === ranges.length - 1 ? f.length : 5 + ranges[i + 1]!.segStart;
      const t = this.newTxn('simple', f.startNs, f.endNs, to - from, f.offset + from, f.lost);
      t.request.query = b.toString('utf8', r.start, r.end);
      if (truncated && i === ranges.length - 1) t.request.truncated = true;
      t.reqClosed = true;
      this.pushItem(K.Stmt, t);
    }
    this.pushItem(K.QueryEnd, null);
  }

  private onFunctionCall(f: Frame): void {
    const t = this.newTxn('function', f.startNs, f.endNs, f.length, f.offset, f.lost);
    if (f.body.length >= 4) t.request.query = `FUNCTION CALL ${f.body.readUInt32BE(0)}`;
    t.reqClosed = true;
    this.pushItem(K.Func, t);
    this.pushItem(K.QueryEnd, null);
  }

  private ensureGroup(f: Frame): Txn {
    const g = this.group;
    if (g && g.state === State.Open) {
      this.extendRequest(g, f);
      return g;
    }
    const t = this.newTxn('extended', f.startNs, f.endNs, f.length, f.offset, f.lost);
    this.group = t;
    return t;
  }

  private onParse(f: Frame): void {
    const g = this.ensureGroup(f);
    const b = f.body;
    const [name, q] = cstr(b, 0);
    let sql = '';
    let truncated = true;
    if (q >= 0) {
      const z = b.indexOf(0, q);
      truncated = z < 0;
      sql = normalizeSql(b, q, z < 0 ? b.length : z);
    }
    this.remember(name, sql, truncated);
    if (g.parseSql === undefined) {
      g.parseSql = sql;
      g.parseTruncated = truncated;
    }
    this.pushItem(K.Parse, g);
  }

  private onBind(f: Frame): void {
    const g = this.ensureGroup(f);
    const b = f.body;
    const [portal, p1] = cstr(b, 0);
    const [statement, p2] = p1 >= 0 ? cstr(b, p1) : ['', -1];
    if (p2 >= 0) {
      this.setQuery(g, statement);
      if (this.portals.size >= MAX_PORTALS && !this.portals.has(portal)) {
        this.portals.delete(this.portals.keys().next().value as string);
      }
      this.portals.set(portal, { statement });
      // parameter formats, parameters, result formats
      let p = p2;
      if (p + 2 <= b.length) {
        const nfmt = b.readInt16BE(p);
        p += 2 + 2 * Math.max(0, nfmt);
        if (p + 2 <= b.length) {
          const nparams = b.readInt16BE(p);
          g.request.params = Math.max(0, nparams);
          p += 2;
          for (let i = 0; i < nparams && p + 4 <= b.length; i++) {
            const len = b.readInt32BE(p);
            p += 4 + Math.max(0, len);
          }
          if (p + 2 <= b.length) {
            const nres = b.readInt16BE(p);
            p += 2;
            if (nres > 0 && p + 2 * nres <= b.length) {
              const fmts: number[] = [];
              for (let i = 0; i < nres; i++) fmts.push(b.readInt16BE(p + 2 * i));
              if (fmts.some((x) => x === 1)) g.bindFormats = fmts;
            }
          }
        }
      }
    }
    this.pushItem(K.Bind, g);
  }

  private onCloseMessage(f: Frame): void {
    const g = this.ensureGroup(f);
    const b = f.body;
    if (b.length >= 1) {
      const [name, next] = cstr(b, 1);
      if (next >= 0) {
        if (b[0] === 0x53) this.forget(name);
        else this.portals.delete(name);
      }
    }
    this.pushItem(K.Close, g);
  }

  private onExecute(f: Frame): void {
    const g = this.ensureGroup(f);
    const [portal, next] = cstr(f.body, 0);
    if (next >= 0) {
      g.request.portal = portal;
      if (g.request.statement === undefined) {
        const p = this.portals.get(portal);
        if (p) this.setQuery(g, p.statement);
        else g.unknownStatement = true;
      }
    }
    g.hasExecute = true;
    this.pushItem(K.Execute, g);
    this.endGroup();
  }

  /** The group runs prepared statement `name`. */
  private setQuery(g: Txn, name: string): void {
    g.request.statement = name;
    const s = this.statements.get(name);
    if (s) {
      g.request.query = s.sql;
      if (s.truncated) g.request.truncated = true;
      g.unknownStatement = false;
    } else {
      g.request.query = undefined;
      g.unknownStatement = true;
    }
  }

  private remember(name: string, sql: string, truncated: boolean): void {
    this.forget(name);
    this.statements.set(name, { sql, truncated });
    this.statementBytes += sql.length + name.length;
    while (this.statements.size > this.maxStatements || this.statementBytes > this.maxStatementBytes) {
      const oldest = this.statements.keys().next().value as string;
      if (oldest === name && this.statements.size === 1) break;
      this.forget(oldest);
      this.reportOnce('statements', `pgsql: more than ${this.maxStatements} prepared statements or ${this.maxStatementBytes} bytes of SQL on one connection; the oldest are forgotten`);
    }
  }

  private forget(name: string): void {
    const s = this.statements.get(name);
    if (!s) return;
    this.statementBytes -= s.sql.length + name.length;
    this.statements.delete(name);
  }

  private endGroup(): void {
    const g = this.group;
    if (!g) return;
    this.group = null;
    g.ended = true;
    if (g.state !== State.Open) return;
    this.tail = g;
    this.checkDiscard(g);
  }

  private closeTail(): void {
    const t = this.tail;
    if (!t) return;
    this.tail = null;
    t.reqClosed = true;
    this.tryEmit(t);
  }

  private extendRequest(t: Txn, f: Frame): void {
    if (t.state !== State.Open) return;
    t.req.bytes += f.length;
    t.req.endNs = f.endNs;
    if (f.lost) this.note(t, LOSS_REQUEST);
  }

  // ---- server messages -----------------------------------------------------------

  private onServer(f: Frame): void {
    this.serverUnsynced = false;
    switch (f.type) {
      case T_SSL_REPLY:
        // 'S' / 'G': the rest is encrypted; 'N': the client goes on in clear
        if (f.code !== 0x4e) this.encrypted();
        return;
      case T_TLS:
        return this.encrypted();
      case B_READY:
        return this.onReady();
      case B_PARSE_COMPLETE:
        this.answer(K.Parse, f, false);
        return;
      case B_BIND_COMPLETE:
        this.answer(K.Bind, f, false);
        return;
      case B_CLOSE_COMPLETE:
        this.answer(K.Close, f, true);
        return;
      case B_NO_DATA:
        this.answer(K.Describe, f, true);
        return;
      case B_ROW_DESCRIPTION:
        return this.onRowDescription(f);
      case B_COMMAND_COMPLETE:
      case B_EMPTY_QUERY:
      case B_PORTAL_SUSPENDED:
        return this.onComplete(f);
      case B_ERROR:
        return this.onError(f);
      case B_DATA_ROW:
        return this.onDataRow(f);
      case B_COPY_IN:
      case B_COPY_OUT:
      case B_COPY_BOTH:
        return this.onCopyResponse(f);
      case B_COPY_DATA: {
        const t = this.resultTxn();
        if (!t) return;
        this.count(t, f);
        const r = this.response(t);
        if (r.copy === 'out' || r.copy === 'both') r.numRows++;
        return;
      }
      case B_FUNCTION_RESULT: {
        const item = this.answer(K.Func, f, true);
        if (item?.txn) this.complete(item.txn);
        return;
      }
      case B_PARAMETER_DESCRIPTION: {
        const i = this.find(K.Describe, K.Describe);
        if (i >= 0) this.count(this.items.at(i).txn, f);
        return;
      }
      default: {
        // NoticeResponse, ParameterStatus, NotificationResponse, CopyDone, ...: part of
        // the answer in progress, if any (outside queries: startup, idle)
        const head = this.items.length > 0 ? this.items.at(0) : undefined;
        if (head && head.k !== K.Sync && head.k !== K.QueryEnd) this.count(head.txn, f);
        return;
      }
    }
  }

  private onServerSkipped(bytes: number, lost: boolean, ts: number): void {
    this.serverUnsynced = true;
    const head = this.items.length > 0 ? this.items.at(0) : undefined;
    const t = head && head.k !== K.Sync && head.k !== K.QueryEnd ? head.txn : null;
    if (!t || t.state !== State.Open) return;
    if (t.res) {
      t.res.bytes += bytes;
      t.res.endNs = ts;
    } else {
      t.res = { startNs: ts, endNs: ts, bytes, offset: this.server.position() - bytes };
    }
    t.resUnsynced = true;
    if (lost) this.note(t, LOSS_RESPONSE);
  }

  /**
   * The client starts a new request while the server's answer to the previous
   * one lost sync (with payload heads only, the end of a large result —
   * CommandComplete, ReadyForQuery — is often in the part not copied): a client
   * that waits for ReadyForQuery got it, so the cycle is over. Its transaction
   * ends with what was seen of the answer.
   */
  private settleServer(): void {
    if (!this.serverUnsynced || this.items.length === 0) return;
    const head = this.items.at(0);
    if (head.k !== K.Stmt && head.k !== K.Execute && head.k !== K.Func) return;
    if (!head.txn || !head.txn.res || !head.txn.resUnsynced) return;
    const n = this.items.length;
    for (let i = 0; i < n; i++) {
      const k = this.items.at(i).k;
      if (k === K.Sync || k === K.QueryEnd) {
        this.serverUnsynced = false;
        this.onReady();
        return;
      }
    }
  }

  /** Index of the first item of kind a or b before the next Sync/QueryEnd, or -1. */
  private find(a: K, b: K): number {
    const n = this.items.length;
    for (let i = 0; i < n; i++) {
      const k = this.items.at(i).k;
      if (k === a || k === b) return i;
      if (k === K.Sync || k === K.QueryEnd) return -1;
    }
    return -1;
  }

  /** The transaction rows and COPY data go to (head statement or Execute). */
  private resultTxn(): Txn | null {
    const i = this.find(K.Stmt, K.Execute);
    if (i < 0) return null;
    const t = this.items.at(i).txn;
    return t && t.state === State.Open ? t : null;
  }

  /** Pops items before index i as unanswered, then item i; returns it. */
  private popThrough(i: number): Item {
    for (let k = 0; k < i; k++) this.abandon(this.items.shift()!);
    const item = this.items.shift()!;
    if (item.txn && counted(item.k)) this.answered(item.txn);
    return item;
  }

  private answer(kind: K, f: Frame, countIt: boolean): Item | null {
    const i = this.find(kind, kind);
    if (i < 0) return null; // nothing asked for it: dropped
    const item = this.popThrough(i);
    if (countIt && item.txn) this.count(item.txn, f);
    return item;
  }

  private onRowDescription(f: Frame): void {
    const i = this.findRowDescriptionTarget();
    if (i < 0) return;
    const item = this.items.at(i);
    if (item.k === K.Describe) this.popThrough(i);
    const t = item.txn;
    if (!t || t.state !== State.Open) return;
    this.count(t, f);
    const b = f.body;
    if (b.length < 2) return;
    const n = b.readInt16BE(0);
    const r = this.response(t);
    r.numFields = Math.max(0, n);
    const names: string[] = [];
    const types: number[] = [];
    const formats: number[] = [];
    let p = 2;
    for (let k = 0; k < n; k++) {
      const [name, next] = cstr(b, p);
      if (next < 0 || next + 18 > b.length) break;
      names.push(name);
      types.push(b.readInt32BE(next + 6));
      formats.push(b.readInt16BE(next + 16));
      p = next + 18;
    }
    if (this.sendResponse) r.fieldNames = names;
    if (formats.some((x) => x === 1)) {
      t.colTypes = types;
      t.colFormats = formats;
    } else {
      t.colTypes = undefined;
      t.colFormats = undefined;
    }
  }

  private findRowDescriptionTarget(): number {
    const n = this.items.length;
    for (let i = 0; i < n; i++) {
      const k = this.items.at(i).k;
      if (k === K.Describe || k === K.Stmt || k === K.Execute) return i;
      if (k === K.Sync || k === K.QueryEnd) return -1;
    }
    return -1;
  }

  private onDataRow(f: Frame): void {
    const t = this.resultTxn();
    if (!t) return;
    this.count(t, f);
    const r = this.response(t);
    r.numRows++;
    if (!this.sendResponse || f.body.length < 2) return;
    const rows = (r.rows ??= []);
    if (rows.length >= this.maxRows) return;
    rows.push(this.decodeRow(t, f.body));
  }

  /** Values of one DataRow; at most maxRowLength value bytes in all (the last one cut, the rest left out). */
  private decodeRow(t: Txn, b: Buffer): string[] {
    const n = b.readInt16BE(0);
    const row: string[] = [];
    const formats = t.colFormats ?? t.bindFormats;
    const max = this.maxRowLength;
    let used = 0;
    let p = 2;
    for (let k = 0; k < n; k++) {
      if (p + 4 > b.length || used >= max) break;
      const len = b.readInt32BE(p);
      p += 4;
      if (len <= 0) {
        row.push('');
        continue;
      }
      const avail = Math.min(len, b.length - p);
      const binary = formats !== undefined && (formats.length === 1 ? formats[0] : formats[k]) === 1;
      let value: string;
      if (binary) {
        value = binaryValue(b, p, len, avail, t.colTypes?.[k]);
        if (used + value.length > max) value = value.slice(0, max - used);
        used += value.length;
      } else {
        const take = Math.min(avail, max - used);
        value = b.toString('utf8', p, p + take);
        used += take;
      }
      row.push(value);
      p += len;
    }
    return row;
  }

  private onComplete(f: Frame): void {
    const i = this.find(K.Stmt, K.Execute);
    if (i < 0) return;
    const item = this.popThrough(i);
    const t = item.txn;
    if (!t || t.state !== State.Open) return;
    this.count(t, f);
    const r = this.response(t);
    if (f.type === B_COMMAND_COMPLETE) {
      const [tag] = cstr(f.body, 0);
      r.tag = tag;
      const rows = rowsFromTag(tag);
      if (rows !== undefined) r.rowsAffected = rows;
    } else if (f.type === B_EMPTY_QUERY) {
      r.empty = true;
    } else {
      r.suspended = true;
    }
    this.complete(t);
  }

  private onError(f: Frame): void {
    const head = this.items.length > 0 ? this.items.at(0) : undefined;
    // outside any request (failed authentication, shutdown): no transaction
    if (!head || head.k === K.Sync || head.k === K.QueryEnd) return;
    const t = head.txn;
    if (t && t.state === State.Open) {
      this.count(t, f);
      this.response(t).error = parseError(f.body);
      t.done = true; // before the pop: a failed group without Execute is reported, not discarded
    }
    const item = this.popThrough(0);
    // the server skips the rest of the query (simple) or everything up to Sync (extended)
    const stop = item.k === K.Stmt || item.k === K.Func ? K.QueryEnd : K.Sync;
    while (this.items.length > 0) {
      const next = this.items.at(0);
      if (next.k === stop || next.k === K.Sync || next.k === K.QueryEnd) break;
      this.items.shift();
      const nt = next.txn;
      if (!nt) continue;
      if (nt === t) {
        if (counted(next.k)) this.answered(nt);
      } else if (nt.state === State.Open && !nt.done) {
        this.drop(nt); // never ran
      }
    }
    if (t) this.complete(t);
  }

  private onCopyResponse(f: Frame): void {
    const t = this.resultTxn();
    if (!t) return;
    this.count(t, f);
    const r = this.response(t);
    r.copy = f.type === B_COPY_IN ? 'in' : f.type === B_COPY_OUT ? 'out' : 'both';
    if (f.type !== B_COPY_OUT) this.copyIn = t;
  }

  private onReady(): void {
    const n = this.items.length;
    let i = 0;
    while (i < n) {
      const k = this.items.at(i).k;
      if (k === K.Sync || k === K.QueryEnd) break;
      i++;
    }
    if (i === n) {
      // nothing asked for it (startup) or the client's Sync was not seen: start over
      while (this.items.length > 0) this.abandon(this.items.shift()!);
      return;
    }
    this.popThrough(i);
    if (this.copyIn && this.copyIn.state !== State.Open) this.copyIn = null;
  }

  // ---- transactions --------------------------------------------------------------

  private newTxn(protocol: PgsqlRequest['protocol'], startNs: number, endNs: number, bytes: number, offset: number, lost: boolean): Txn {
    if (this.openCount >= MAX_OPEN) {
      this.reportOnce('open', `pgsql: more than ${MAX_OPEN} requests waiting for their answer on one connection; the oldest are reported unmatched`);
      for (let i = 0; i < this.open.length; i++) {
        const o = this.open.at(i);
        if (o.state === State.Open) {
          this.emit(o, !o.done);
          break;
        }
      }
      this.compactOpen();
    }
    const request: PgsqlRequest = { protocol };
    if (this.user !== undefined) request.user = this.user;
    if (this.database !== undefined) request.database = this.database;
    if (this.application !== undefined) request.application = this.application;
    const t: Txn = {
      req: { startNs, endNs, bytes, offset },
      request,
      res: null,
      response: null,
      notes: lost ? [LOSS_REQUEST] : [],
      state: State.Open,
      done: false,
      reqClosed: false,
      unknownStatement: false,
      hasExecute: false,
      ended: false,
      outstanding: 0,
      resUnsynced: false,
    };
    this.open.push(t);
    this.openCount++;
    return t;
  }

  private pushItem(k: K, txn: Txn | null): void {
    if (this.items.length >= MAX_ITEMS) {
      this.reportOnce('items', `pgsql: more than ${MAX_ITEMS} client messages waiting for their answer on one connection; the oldest are dropped`);
      this.abandon(this.items.shift()!);
    }
    this.items.push({ k, txn });
    if (txn && counted(k)) txn.outstanding++;
  }

  private response(t: Txn): PgsqlResponse {
    return (t.response ??= { numRows: 0 });
  }

  private count(t: Txn | null, f: Frame): void {
    if (!t || t.state !== State.Open) return;
    if (t.res) {
      t.res.bytes += f.length;
      t.res.endNs = f.endNs;
    } else {
      t.res = { startNs: f.startNs, endNs: f.endNs, bytes: f.length, offset: f.offset };
    }
    if (f.lost) this.note(t, LOSS_RESPONSE);
  }

  private note(t: Txn, note: string): void {
    if (!t.notes.includes(note)) t.notes.push(note);
  }

  private complete(t: Txn): void {
    if (t.state !== State.Open) return;
    t.done = true;
    if (this.copyIn === t) this.copyIn = null;
    this.tryEmit(t);
  }

  /** A counted item of `t` got its answer. */
  private answered(t: Txn): void {
    t.outstanding--;
    this.checkDiscard(t);
  }

  /** An item that will get no answer (the server skipped it, or bytes were lost). */
  private abandon(item: Item): void {
    const t = item.txn;
    if (!t) return;
    if (counted(item.k)) t.outstanding--;
    if (t.state !== State.Open) return;
    if (item.k === K.Stmt || item.k === K.Execute || item.k === K.Func) {
      if (t.done) return;
      if (t.res) this.complete(t); // a partial answer (its end was lost)
      else this.emit(t, true);
      return;
    }
    this.checkDiscard(t);
  }

  private isNoExecuteGroup(t: Txn): boolean {
    return t.request.protocol === 'extended' && !t.hasExecute && !t.done;
  }

  /** A group without Execute whose messages were all answered without error makes no transaction. */
  private checkDiscard(t: Txn): void {
    if (t.state === State.Open && t.ended && t.outstanding <= 0 && this.isNoExecuteGroup(t)) this.drop(t);
  }

  private tryEmit(t: Txn): void {
    if (t.state === State.Open && t.done && t.reqClosed) {
      this.emit(t, false);
      this.compactOpen();
    }
  }

  private drop(t: Txn): void {
    if (t.state !== State.Open) return;
    t.state = State.Dropped;
    this.openCount--;
    if (this.tail === t) this.tail = null;
    if (this.group === t) this.group = null;
    if (this.copyIn === t) this.copyIn = null;
  }

  private compactOpen(): void {
    while (this.open.length > 0 && this.open.at(0).state !== State.Open) this.open.shift();
  }

  private emit(t: Txn, unmatched: boolean): void {
    if (t.state !== State.Open) return;
    t.state = State.Emitted;
    this.openCount--;
    if (this.tail === t) this.tail = null;
    if (this.group === t) this.group = null;
    if (this.copyIn === t) this.copyIn = null;
    const request = t.request;
    if (request.protocol === 'extended' && request.query === undefined) {
      if (t.parseSql !== undefined && request.statement === undefined) {
        // a group without Bind (a Parse that failed, say): its SQL is the Parse's
        request.query = t.parseSql;
        if (t.parseTruncated) request.truncated = true;
      } else {
        this.note(t, UNKNOWN_QUERY);
      }
    }
    const notes = unmatched ? [...t.notes, 'Unmatched request'] : t.notes;
    const txn: ProtocolTransaction<PgsqlData> = {
      request: span(t.req),
      response: !unmatched && t.res ? span(t.res) : undefined,
      notes,
      data: { request, response: unmatched ? undefined : (t.response ?? undefined) },
    };
    try {
      this.sink.onTransaction(txn);
    } catch (err) {
      this.safeError(`pgsql: transaction sink failed: ${(err as Error)?.message ?? String(err)}`, false);
    }
  }

  // ---- connection-level ------------------------------------------------------------

  /** TLS or GSS encryption: nothing more can be read, and nothing is reported. */
  private encrypted(): void {
    this.client.off();
    this.server.off();
    this.items.clear();
  }

  private garbage(reason: string, fatal: boolean): void {
    this.safeError(`pgsql: ${reason}`, fatal);
  }

  private reportOnce(key: string, reason: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.safeError(reason, false);
  }

  private safeError(reason: string, fatal: boolean): void {
    try {
      this.sink.onError(reason, fatal);
    } catch {
      // a failing sink must not break parsing
    }
  }

  private internalError(err: unknown): void {
    this.dead = true;
    this.client.off();
    this.server.off();
    this.safeError(`pgsql: internal error: ${(err as Error)?.stack ?? String(err)}`, true);
  }
}

/** PostgreSQL (protocol 3) on one connection. */
export function createPgsqlSession(sink: TransactionSink<PgsqlData>, options: PgsqlOptions = {}): ProtocolSession {
  return new PgsqlSession(sink, options);
}
