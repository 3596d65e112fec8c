/**
 * MySQL/MariaDB on one connection: packet framing of both directions, the
 * connection phase (greeting, HandshakeResponse41, auth exchange; never a
 * transaction), then commands (sequence id 0 from the client) paired FIFO with
 * their responses (pipelined commands are queued, not dropped).
 *
 * Responses: OK / ERR / EOF, result sets (column count, definitions, rows until
 * EOF, or until the 0xfe OK packet under CLIENT_DEPRECATE_EOF), several result
 * sets (SERVER_MORE_RESULTS_EXISTS), binary rows of prepared statements,
 * COM_STMT_PREPARE_OK with its parameter and column definitions, LOCAL INFILE.
 *
 * TLS (SSLRequest) and the compressed protocol stop the decoding: a TLS
 * connection is ignored silently; a compressed one is only framed, each
 * command reported with its timing and sizes and a note.
 */
import type { ProtocolSession, ProtocolTransaction, Sender, TransactionSink } from '../types';
import { CAP, COM, commandName, MARIADB_CAP, MAX_PACKET, STATUS, UNSIGNED_FLAG } from './constants';
import {
  Cursor,
  decodeBinaryRow,
  decodeBinaryValue,
  decodeTextRow,
  eofStatus,
  parseChangeUser,
  parseColumnDef,
  parseErr,
  parseExecuteParams,
  parseGreeting,
  parseHandshakeResponse,
  parseOk,
  parsePrepareOk,
  sqlMethod,
  trimQuery,
  useStatementSchema,
  type ParamType,
} from './decode';
import { PacketFramer, type Packet, type ResyncResult } from './framer';
import type { MysqlData, MysqlRequest, MysqlResponse, MysqlSessionOptions } from './types';

export const NOTE_REQUEST_LOSS = 'Packet loss while capturing the request';
export const NOTE_RESPONSE_LOSS = 'Packet loss while capturing the response';
export const NOTE_UNMATCHED_REQUEST = 'Unmatched request';
export const NOTE_UNMATCHED_RESPONSE = 'Unmatched response';
export const NOTE_UNKNOWN_STATEMENT = 'The actual query being used is unknown';
export const NOTE_INCOMPLETE_RESPONSE = 'Response incomplete';
export const NOTE_COMPRESSED = 'MySQL compressed protocol: the messages are not decoded';

const UNKNOWN_EXECUTE = 'Request Execute Statement';

/** SQL of prepared statements remembered per connection (bytes). */
const MAX_STATEMENT_BYTES = 1 << 20;

/** Longest chain link accepted when looking for a server packet start after lost bytes. */
const RESYNC_MAX_LINK = 32 * 1024;

type Phase = 'init' | 'handshake' | 'command' | 'tls' | 'compressed' | 'off';

type Expect = 'resultset' | 'binary' | 'fetch' | 'prepare' | 'fieldlist' | 'string' | 'auth' | 'simple';

type RState =
  | 'first'
  | 'columns'
  | 'afterColumns'
  | 'rows'
  | 'prepParams'
  | 'prepParamsEof'
  | 'prepCols'
  | 'prepColsEof'
  | 'maybeDone'
  | 'infile'
  | 'fieldList';

interface Statement {
  sql: string;
  method: string;
  numParams: number;
  numColumns: number;
  paramTypes?: ParamType[];
  columnTypes?: ParamType[];
  bytes: number;
}

interface RespState {
  r: MysqlResponse;
  state: RState;
  remaining: number;
  /** Result sets begun so far. */
  sets: number;
  /** Keeping column names and rows (first result set, sendResponse). */
  collect: boolean;
  binary: boolean;
  colTypes?: ParamType[];
  /** Bytes were lost or passed over inside this response: its end may be missed. */
  uncertain: boolean;
  prepare?: { statementId: number; numParams: number; numColumns: number; stmt: Statement };
}

interface Pending {
  req: MysqlRequest;
  expect: Expect;
  /** Sequence id of the first response packet. */
  firstSeq: number;
  user?: string;
  database?: string;
  stmt?: Statement;
  resp?: RespState;
  /** Parsed for the pairing but not reported (COM_PING unless reportPings). */
  silent?: boolean;
}

/** Compressed-protocol exchange: only sizes and timing. */
interface CompressedExchange {
  req: MysqlRequest;
  resp?: MysqlResponse;
  user?: string;
  database?: string;
}

function printableSql(b: Buffer, from: number): boolean {
  const end = Math.min(b.length, from + 16);
  for (let i = from; i < end; i++) {
    const c = b[i];
    if (c < 0x09 || (c > 0x0d && c < 0x20) || c === 0x7f) return false;
  }
  return true;
}

/** A MySQL session (see the file comment). */
export function createMysqlSession(sink: TransactionSink<MysqlData>, options: MysqlSessionOptions = {}): ProtocolSession {
  return new MysqlSession(sink, options);
}

class MysqlSession implements ProtocolSession {
  private readonly sendResponse: boolean;
  private readonly maxRows: number;
  private readonly maxRowLength: number;
  private readonly maxQueryBytes: number;
  private readonly maxStatements: number;
  private readonly maxPending: number;
  private readonly reportPings: boolean;

  private phase: Phase = 'init';
  private clientCaps?: number;
  private serverCaps?: number;
  private clientMariaCaps?: number;
  private serverMariaCaps?: number;
  private deprecateEof?: boolean;
  private compressNegotiated = false;
  private user?: string;
  private database?: string;
  private serverVersion?: string;

  private readonly statements = new Map<number, Statement>();
  private statementBytes = 0;
  private lastStatementId?: number;
  private readonly pendingQ: Pending[] = [];
  private lastTs = 0;
  private dead = false;

  private readonly client: PacketFramer;
  private readonly server: PacketFramer;
  private compressed?: { client: CompressedFramer; server: CompressedFramer; current?: CompressedExchange };

  constructor(
    private readonly sink: TransactionSink<MysqlData>,
    options: MysqlSessionOptions,
  ) {
    const {
      sendResponse = false,
      maxRows = 10,
      maxRowLength = 1024,
      maxQueryBytes = 64 * 1024,
      maxStatements = 256,
      maxPending = 128,
      reportPings = false,
    } = options;
    this.reportPings = reportPings;
    this.sendResponse = sendResponse;
    this.maxRows = Math.max(0, maxRows);
    this.maxRowLength = Math.max(0, maxRowLength);
    this.maxQueryBytes = Math.max(64, maxQueryBytes);
    this.maxStatements = Math.max(1, maxStatements);
    this.maxPending = Math.max(1, maxPending);
    this.client = new PacketFramer({
      keep: () => (this.phase === 'command' || this.phase === 'init' ? this.clientKeep() : 4096),
      packet: (p) => this.onClientPacket(p),
      desync: (partial, skipped, lost, ts) => this.onClientDesync(partial, skipped, lost, ts),
      skipped: () => undefined,
      resync: (buf, starts, from) => this.clientResync(buf, starts, from),
    });
    this.server = new PacketFramer({
      keep: () => this.serverKeep(),
      packet: (p) => this.onServerPacket(p),
      desync: (partial, skipped, lost, ts) => this.onServerDesync(partial, skipped, lost, ts),
      skipped: (bytes, ts) => this.onServerSkipped(bytes, ts),
      resync: (buf, starts, from) => this.serverResync(buf, starts, from),
    });
  }

  // ---- ProtocolSession ------------------------------------------------------------

  feed(from: Sender, data: Buffer, tsNs: number): void {
    if (this.dead || data.length === 0) return;
    this.guard(() => {
      this.lastTs = tsNs;
      if (this.compressed) this.compressed[from].feed(data, tsNs);
      else (from === 'client' ? this.client : this.server).feed(data, tsNs);
    });
  }

  gap(from: Sender, length: number, tsNs: number, lost = true): void {
    if (this.dead || length <= 0) return;
    this.guard(() => {
      this.lastTs = tsNs;
      if (this.compressed) this.compressed[from].gap(length, lost, tsNs);
      else (from === 'client' ? this.client : this.server).gap(length, lost, tsNs);
    });
  }

  end(from: Sender, _tsNs: number): void {
    if (this.dead) return;
    this.guard(() => {
      // the server will send nothing more: a response waiting only for an optional EOF is complete
      const head = this.pendingQ[0];
      if (from === 'server' && head?.resp?.state === 'maybeDone') this.finishHead([]);
    });
  }

  bufferedBytes(): number {
    if (this.compressed) return this.compressed.client.bufferedBytes() + this.compressed.server.bufferedBytes();
    return this.client.bufferedBytes() + this.server.bufferedBytes();
  }

  pending(): number {
    if (this.compressed) return this.compressed.current ? 1 : 0;
    return this.pendingQ.length;
  }

  expire(beforeNs: number): void {
    this.guard(() => {
      if (this.compressed) {
        const cur = this.compressed.current;
        if (cur && (cur.resp ? cur.resp.endNs : cur.req.endNs) < beforeNs) this.emitCompressed();
        return;
      }
      while (this.pendingQ.length > 0) {
        const head = this.pendingQ[0];
        const last = head.resp ? head.resp.r.endNs : head.req.endNs;
        if (last >= beforeNs) break;
        if (!head.resp) this.emit(this.pendingQ.shift()!, [NOTE_UNMATCHED_REQUEST]);
        else if (head.resp.state === 'maybeDone') this.finishHead([]);
        else {
          head.resp.r.incomplete = true;
          this.finishHead([NOTE_INCOMPLETE_RESPONSE]);
          // the rest of that response is not to be taken for the next one
          this.restartServer(beforeNs);
        }
      }
    });
  }

  close(_tsNs: number): void {
    this.guard(() => {
      if (this.compressed) {
        if (this.compressed.current) this.emitCompressed();
        return;
      }
      while (this.pendingQ.length > 0) {
        const head = this.pendingQ[0];
        if (!head.resp) this.emit(this.pendingQ.shift()!, [NOTE_UNMATCHED_REQUEST]);
        else if (head.resp.state === 'maybeDone') this.finishHead([]);
        else {
          head.resp.r.incomplete = true;
          this.finishHead([NOTE_INCOMPLETE_RESPONSE]);
        }
      }
    });
    this.dead = true;
  }

  // ---- plumbing -----------------------------------------------------------------

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // a bug of ours must not take the agent down: give up on this connection
      this.dead = true;
      this.client.stop();
      this.server.stop();
      this.error(`mysql session failed: ${(err as Error)?.message ?? String(err)}`, true);
    }
  }

  private error(reason: string, fatal: boolean): void {
    try {
      this.sink.onError(reason, fatal);
    } catch {
      // the sink's problem
    }
  }

  private deliver(txn: ProtocolTransaction<MysqlData>): void {
    try {
      this.sink.onTransaction(txn);
    } catch (err) {
      this.error(`transaction sink failed: ${(err as Error)?.message ?? String(err)}`, false);
    }
  }

  private emit(p: Pending, notes: string[]): void {
    if (p.silent) return;
    const req = p.req;
    const resp = p.resp?.r;
    const data: MysqlData = { request: req, response: resp };
    if (p.user !== undefined) data.user = p.user;
    if (p.database !== undefined) data.database = p.database;
    if (this.serverVersion !== undefined) data.serverVersion = this.serverVersion;
    this.deliver({
      request: { startNs: req.startNs, endNs: req.endNs, bytes: req.bytes, streamOffset: req.streamOffset },
      response: resp && { startNs: resp.startNs, endNs: resp.endNs, bytes: resp.bytes, streamOffset: resp.streamOffset },
      notes: [...req.notes, ...(resp?.notes ?? []), ...notes],
      data,
    });
  }

  private finishHead(notes: string[]): void {
    const head = this.pendingQ.shift();
    if (head) this.emit(head, notes);
  }

  /** The next server byte starts a packet, and the next packet a response. */
  private restartServer(ts: number): void {
    if (this.server.mode === 'off') return;
    this.server.restart(ts);
    this.resumed = true;
  }

  private get effectiveCaps(): number | undefined {
    if (this.clientCaps === undefined) return this.serverCaps;
    return this.serverCaps === undefined ? this.clientCaps : (this.clientCaps & this.serverCaps) >>> 0;
  }

  /** MariaDB extended metadata in column definitions: true/false when the handshake was seen. */
  private get extendedMetadata(): boolean | undefined {
    if (this.clientCaps === undefined) return undefined;
    if (this.clientMariaCaps === undefined) return false;
    const server = this.serverMariaCaps ?? MARIADB_CAP.EXTENDED_METADATA;
    return (this.clientMariaCaps & server & MARIADB_CAP.EXTENDED_METADATA) !== 0;
  }

  /** Command byte, query attributes (when negotiated) and maxQueryBytes of SQL. */
  private clientKeep(): number {
    const caps = this.effectiveCaps;
    return this.maxQueryBytes + (caps !== undefined && caps & CAP.QUERY_ATTRIBUTES ? 256 : 1);
  }

  private serverKeep(): number {
    const head = this.pendingQ[0];
    const rs = head?.resp;
    if (rs && (rs.state === 'rows' || rs.state === 'afterColumns')) {
      if (rs.collect && rs.r.rows !== undefined && rs.r.rows.length < this.maxRows) {
        const cols = rs.r.numFields || 1;
        return Math.min(1 << 20, this.maxRowLength + 9 * cols + 64);
      }
      return 1024;
    }
    return 16 * 1024;
  }

  // ---- client side --------------------------------------------------------------

  private onClientPacket(p: Packet): void {
    switch (this.phase) {
      case 'init':
        if (p.seq === 1) {
          this.phase = 'handshake';
          this.onHandshakeResponse(p);
        } else if (p.seq === 0 && p.head.length > 0 && commandName(p.head[0]) !== undefined) {
          this.phase = 'command';
          // whatever the server framing made of bytes before the first command is void
          this.restartServer(p.startNs);
          this.onCommand(p);
        } else {
          // not a command: the capture began inside one; look for the next at a chunk start
          this.client.lose();
        }
        return;
      case 'handshake':
        if (p.seq === 1) this.onHandshakeResponse(p);
        else if (p.seq === 0 && p.head.length > 0 && commandName(p.head[0]) !== undefined) {
          // the end of the auth exchange was missed
          this.phase = 'command';
          this.onCommand(p);
        }
        // other sequence ids: auth data, never decoded
        return;
      case 'command':
        this.onCommand(p);
        return;
      default:
        return;
    }
  }

  private onHandshakeResponse(p: Packet): void {
    const hr = parseHandshakeResponse(p.head, p.length);
    if (!hr) return;
    this.clientCaps = hr.capabilities;
    this.clientMariaCaps = hr.mariadbCapabilities;
    if (hr.sslRequest) {
      // TLS from here on: nothing more can be decoded, silently
      this.phase = 'tls';
      this.client.stop();
      this.server.stop();
      return;
    }
    if (hr.user !== undefined) this.user = hr.user;
    if (hr.database !== undefined) this.database = hr.database;
    const caps = this.effectiveCaps ?? hr.capabilities;
    this.deprecateEof = (caps & CAP.DEPRECATE_EOF) !== 0;
    this.compressNegotiated = (caps & (CAP.COMPRESS | CAP.ZSTD_COMPRESSION)) !== 0;
  }

  private clientResync(buf: Buffer, starts: readonly number[], from: number): ResyncResult {
    for (const p of starts) {
      if (p < from) continue;
      if (p + 5 > buf.length) return { scanFrom: p };
      const len = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
      const cmd = buf[p + 4];
      if (buf[p + 3] !== 0 || len < 1 || commandName(cmd) === undefined) continue;
      if (cmd === COM.QUERY || cmd === COM.STMT_PREPARE) {
        if (len > 1 && p + 5 >= buf.length) return { scanFrom: p };
        if (!printableSql(buf, p + 5)) continue;
      }
      return { at: p };
    }
    return { scanFrom: buf.length };
  }

  private onClientDesync(partial: Packet | undefined, skipped: number, lost: boolean, ts: number): void {
    if (this.phase !== 'command' || !partial || partial.seq !== 0 || partial.head.length === 0) return;
    // what there is of the command: reported, with the bytes that were not seen
    partial.wireBytes += skipped;
    partial.gapBytes += skipped;
    partial.lost ||= lost;
    partial.endNs = ts;
    this.onCommand(partial);
  }

  /** The client moves on: what the server sent for earlier commands is complete, as far as it can be. */
  private beforeCommand(ts: number): void {
    const head = this.pendingQ[0];
    if (this.server.mode === 'resync') {
      this.restartServer(ts);
      if (head?.resp) {
        head.resp.r.incomplete = true;
        this.finishHead([]);
      }
      return;
    }
    const rs = head?.resp;
    if (!rs) return;
    if (rs.state === 'maybeDone') this.finishHead([]);
    else if (rs.uncertain) {
      if (this.server.midPacket()) this.restartServer(ts);
      rs.r.incomplete = true;
      this.finishHead([]);
    }
  }

  private onCommand(p: Packet): void {
    if (p.seq !== 0) {
      // LOCAL INFILE contents, auth data of COM_CHANGE_USER: part of the exchange in progress
      const last = this.pendingQ[this.pendingQ.length - 1];
      if (last) {
        last.req.bytes += p.wireBytes;
        last.req.endNs = p.endNs;
      }
      return;
    }
    const h = p.head;
    if (h.length === 0) return;
    const cmd = h[0];
    const name = commandName(cmd);
    if (name === undefined) {
      this.error(`unknown MySQL command 0x${cmd.toString(16)}`, false);
      return;
    }
    this.beforeCommand(p.startNs);
    const req: MysqlRequest = {
      startNs: p.startNs,
      endNs: p.endNs,
      bytes: p.wireBytes,
      streamOffset: p.streamOffset,
      notes: p.gapBytes > 0 && p.lost ? [NOTE_REQUEST_LOSS] : [],
      command: cmd,
      commandName: name,
      method: name,
      query: `COM_${name}`,
      isSql: false,
    };
    const cut = h.length < p.length;
    let expect: Expect = 'simple';
    let stmt: Statement | undefined;
    switch (cmd) {
      case COM.QUIT:
      case COM.STMT_SEND_LONG_DATA:
        return;
      case COM.STMT_CLOSE: {
        const id = h.length >= 5 ? h.readUInt32LE(1) : undefined;
        if (id !== undefined) this.forgetStatement(id);
        return;
      }
      case COM.BINLOG_DUMP:
      case COM.BINLOG_DUMP_GTID:
      case COM.CLONE:
        this.phase = 'off';
        this.client.stop();
        this.server.stop();
        this.error(`MySQL COM_${name}: replication/clone stream is not decoded`, true);
        return;
      case COM.QUERY: {
        const start = this.queryTextStart(h);
        if (start === undefined) return;
        this.setSql(req, h.toString('utf8', start), cut);
        expect = 'resultset';
        break;
      }
      case COM.STMT_PREPARE:
        this.setSql(req, h.toString('utf8', 1), cut);
        req.method = 'PREPARE';
        expect = 'prepare';
        break;
      case COM.STMT_EXECUTE: {
        expect = 'binary';
        const id = this.statementIdOf(h);
        req.statementId = id;
        stmt = id === undefined ? undefined : this.statements.get(id);
        if (!stmt) {
          req.method = 'EXECUTE';
          req.query = UNKNOWN_EXECUTE;
          req.notes.push(NOTE_UNKNOWN_STATEMENT);
          break;
        }
        req.query = stmt.sql;
        req.method = stmt.method;
        req.isSql = true;
        const caps = this.effectiveCaps;
        const res = parseExecuteParams(h, stmt.numParams, stmt.paramTypes, caps !== undefined && (caps & CAP.QUERY_ATTRIBUTES) !== 0, this.maxRowLength);
        if (res.types) stmt.paramTypes = res.types;
        if (res.values && res.values.length > 0) req.params = res.values;
        break;
      }
      case COM.STMT_FETCH: {
        expect = 'fetch';
        const id = this.statementIdOf(h);
        req.statementId = id;
        stmt = id === undefined ? undefined : this.statements.get(id);
        req.method = 'FETCH';
        break;
      }
      case COM.STMT_RESET: {
        req.statementId = this.statementIdOf(h);
        break;
      }
      case COM.STMT_BULK_EXECUTE: {
        expect = 'binary';
        const id = this.statementIdOf(h);
        req.statementId = id;
        stmt = id === undefined ? undefined : this.statements.get(id);
        if (stmt) {
          req.query = stmt.sql;
          req.method = stmt.method;
          req.isSql = true;
        } else req.notes.push(NOTE_UNKNOWN_STATEMENT);
        break;
      }
      case COM.INIT_DB: {
        const schema = h.toString('utf8', 1);
        req.schema = schema;
        req.method = 'USE';
        req.query = `USE ${schema}`;
        break;
      }
      case COM.FIELD_LIST: {
        const c = new Cursor(h, 1);
        const table = c.nulBytes() ?? c.rest();
        req.query = `COM_FIELD_LIST ${table.toString('utf8')}`;
        expect = 'fieldlist';
        break;
      }
      case COM.STATISTICS:
        expect = 'string';
        break;
      case COM.PROCESS_INFO:
        expect = 'resultset';
        break;
      case COM.CHANGE_USER: {
        const cu = parseChangeUser(h, this.effectiveCaps);
        req.user = cu.user;
        req.schema = cu.database;
        expect = 'auth';
        break;
      }
      default:
        break;
    }
    const pending: Pending = { req, expect, firstSeq: (p.lastSeq + 1) & 0xff, stmt };
    // health checks of connection pools: noise in the transactions (Packetbeat skips them too)
    if (cmd === COM.PING && !this.reportPings) pending.silent = true;
    if (this.user !== undefined) pending.user = this.user;
    if (this.database !== undefined) pending.database = this.database;
    this.pendingQ.push(pending);
    if (this.pendingQ.length > this.maxPending) {
      this.error(`more than ${this.maxPending} MySQL commands waiting for a response: the oldest is reported unmatched`, false);
      this.emit(this.pendingQ.shift()!, [NOTE_UNMATCHED_REQUEST]);
    }
  }

  private setSql(req: MysqlRequest, text: string, cut: boolean): void {
    const q = trimQuery(text);
    req.query = q;
    req.method = sqlMethod(q);
    req.isSql = true;
    if (cut) req.truncated = true;
  }

  /** Offset of the SQL in a COM_QUERY payload (after query attributes, when negotiated). */
  private queryTextStart(h: Buffer): number | undefined {
    const caps = this.effectiveCaps;
    if (caps === undefined || !(caps & CAP.QUERY_ATTRIBUTES)) return 1;
    const c = new Cursor(h, 1);
    const count = c.lenenc();
    const sets = c.lenenc();
    if (count === undefined || count === null || sets === undefined || sets === null) return undefined;
    if (count > 0) {
      const nulls = c.bytes((count + 7) >> 3);
      const bound = c.u8();
      if (!nulls || bound !== 1) return undefined;
      const types: ParamType[] = [];
      for (let i = 0; i < count; i++) {
        const type = c.u8();
        const flag = c.u8();
        if (type === undefined || flag === undefined || !c.lenencBytes()) return undefined;
        types.push({ type, unsigned: (flag & 0x80) !== 0 });
      }
      for (let i = 0; i < count; i++) {
        if (nulls[i >> 3] & (1 << (i & 7))) continue;
        if (decodeBinaryValue(c, types[i], 1 << 30) === undefined || c.pos > c.buf.length) return undefined;
      }
    }
    return c.pos;
  }

  private statementIdOf(h: Buffer): number | undefined {
    if (h.length < 5) return undefined;
    const id = h.readUInt32LE(1);
    // MariaDB: -1 means the statement prepared last
    return id === 0xffffffff ? this.lastStatementId : id;
  }

  private rememberStatement(id: number, stmt: Statement): void {
    this.forgetStatement(id);
    this.statements.set(id, stmt);
    this.statementBytes += stmt.bytes;
    while (this.statements.size > this.maxStatements || (this.statementBytes > MAX_STATEMENT_BYTES && this.statements.size > 1)) {
      const oldest = this.statements.keys().next().value as number;
      this.forgetStatement(oldest);
    }
  }

  private forgetStatement(id: number): void {
    const s = this.statements.get(id);
    if (!s) return;
    this.statementBytes -= s.bytes;
    this.statements.delete(id);
  }

  // ---- server side --------------------------------------------------------------

  private onServerPacket(p: Packet): void {
    switch (this.phase) {
      case 'init': {
        const b0 = p.head.length > 0 ? p.head[0] : -1;
        if (p.seq === 0 && b0 === 0x0a) {
          this.phase = 'handshake';
          this.onGreeting(p);
        } else if (p.seq === 0 && b0 === 0xff) {
          // the server refused the connection
          this.phase = 'off';
          this.client.stop();
          this.server.stop();
        }
        return;
      }
      case 'handshake': {
        const b0 = p.head.length > 0 ? p.head[0] : -1;
        if (p.seq === 0 && b0 === 0x0a) this.onGreeting(p);
        else if (b0 === 0x00) this.authenticated();
        else if (b0 === 0xff) {
          // access denied: the server closes the connection
          this.phase = 'off';
          this.client.stop();
          this.server.stop();
        }
        // 0xfe auth switch, 0x01 more auth data: wait for OK / ERR
        return;
      }
      case 'command':
        this.onResponsePacket(p);
        return;
      default:
        return;
    }
  }

  private onGreeting(p: Packet): void {
    const g = parseGreeting(p.head);
    if (!g) return;
    this.serverVersion = g.serverVersion;
    this.serverCaps = g.capabilities;
    this.serverMariaCaps = g.mariadbCapabilities;
  }

  private authenticated(): void {
    if (this.compressNegotiated) {
      this.startCompressed();
      return;
    }
    this.phase = 'command';
  }

  private onServerDesync(partial: Packet | undefined, skipped: number, lost: boolean, ts: number): void {
    if (this.phase !== 'command') return;
    const head = this.pendingQ[0];
    if (!head) return;
    if (partial) {
      this.onResponsePacket(partial);
      if (this.pendingQ[0] !== head) return; // that packet ended the response
    }
    if (!head.resp) {
      // nothing of the response was seen before the gap
      const r = this.newResponse(ts, this.server.offset - skipped, head);
      head.resp = r;
    }
    const rs = head.resp;
    rs.uncertain = true;
    rs.r.bytes += skipped;
    rs.r.endNs = ts;
    if (lost && !rs.r.notes.includes(NOTE_RESPONSE_LOSS)) rs.r.notes.push(NOTE_RESPONSE_LOSS);
  }

  private onServerSkipped(bytes: number, ts: number): void {
    const rs = this.pendingQ[0]?.resp;
    if (!rs) return;
    rs.r.bytes += bytes;
    rs.r.endNs = Math.max(rs.r.endNs, ts);
  }

  /** A chain of packets whose sequence ids follow each other marks where the framing resumes. */
  private serverResync(buf: Buffer, starts: readonly number[], from: number): ResyncResult {
    const n = buf.length;
    const chunkStart = new Set(starts);
    let firstWait = -1;
    for (let p = from; p + 4 <= n; p++) {
      let q = p;
      let links = 0;
      let prev = -1;
      let verdict: 'yes' | 'no' | 'wait' = 'wait';
      for (;;) {
        if (q + 4 > n) {
          if (q === n && (links >= 2 || (links >= 1 && chunkStart.has(p)))) verdict = 'yes';
          break;
        }
        const len = buf[q] | (buf[q + 1] << 8) | (buf[q + 2] << 16);
        const seq = buf[q + 3];
        if (len === 0 || len > RESYNC_MAX_LINK || (prev >= 0 && seq !== ((prev + 1) & 0xff))) {
          verdict = 'no';
          break;
        }
        if (q + 4 + len > n) break; // wait for the rest of the link
        q += 4 + len;
        prev = seq;
        if (++links >= 3) {
          verdict = 'yes';
          break;
        }
      }
      if (verdict === 'yes') return { at: p };
      // a start that cannot be told yet: look on (a later chain of three is as good), but come back to it
      if (verdict === 'wait' && firstWait < 0) firstWait = p;
    }
    return { scanFrom: firstWait >= 0 ? firstWait : Math.max(from, n - 3) };
  }

  private newResponse(startNs: number, streamOffset: number, head: Pending): RespState {
    const r: MysqlResponse = {
      kind: 'other',
      startNs,
      endNs: startNs,
      bytes: 0,
      streamOffset,
      notes: [],
      affectedRows: 0,
      insertId: 0,
      numFields: 0,
      numRows: 0,
      numResults: 0,
      tables: [],
      warnings: 0,
    };
    const rs: RespState = {
      r,
      state: head.expect === 'fetch' ? 'rows' : 'first',
      remaining: 0,
      sets: 0,
      collect: false,
      binary: head.expect === 'binary' || head.expect === 'fetch',
      uncertain: false,
    };
    if (head.expect === 'fetch') {
      r.kind = 'resultset';
      rs.colTypes = head.stmt?.columnTypes;
      if (this.sendResponse && rs.colTypes) {
        rs.collect = true;
        r.rows = [];
      }
    }
    return rs;
  }

  private onResponsePacket(p: Packet): void {
    let head = this.pendingQ[0];
    if (head?.resp?.state === 'maybeDone') {
      const b0 = p.head.length > 0 ? p.head[0] : -1;
      if (b0 === 0xfe && p.length < 9) {
        // the EOF after the statement's definitions: the client does not deprecate EOF
        this.deprecateEof = false;
        this.account(head.resp, p);
        this.finishHead([]);
        return;
      }
      this.finishHead([]);
      head = this.pendingQ[0];
    }
    if (!head) {
      this.unsolicited(p);
      return;
    }
    if (!head.resp) {
      if (p.seq !== head.firstSeq && !this.resumed) {
        // not the start of a response: what is left of one that was taken as complete
        return;
      }
      head.resp = this.newResponse(p.startNs, p.streamOffset, head);
    }
    this.resumed = false;
    const rs = head.resp;
    this.account(rs, p);
    if (this.step(head, rs, p)) this.finishHead([]);
  }

  /** Set when the server framing was restarted: the next packet starts a response whatever its sequence id. */
  private resumed = false;

  private unsolicited(p: Packet): void {
    const b0 = p.head.length > 0 ? p.head[0] : -1;
    if (b0 !== 0xff) return;
    // an error the server sends on its own (e.g. before it closes an idle connection)
    const err = parseErr(p.head);
    const r: MysqlResponse = {
      kind: 'error',
      startNs: p.startNs,
      endNs: p.endNs,
      bytes: p.wireBytes,
      streamOffset: p.streamOffset,
      notes: [],
      affectedRows: 0,
      insertId: 0,
      numFields: 0,
      numRows: 0,
      numResults: 0,
      tables: [],
      warnings: 0,
      errorCode: err.code,
      sqlState: err.sqlState,
      errorMessage: err.message,
    };
    const data: MysqlData = { response: r };
    if (this.user !== undefined) data.user = this.user;
    if (this.database !== undefined) data.database = this.database;
    this.deliver({
      response: { startNs: r.startNs, endNs: r.endNs, bytes: r.bytes, streamOffset: r.streamOffset },
      notes: [NOTE_UNMATCHED_RESPONSE],
      data,
    });
  }

  private account(rs: RespState, p: Packet): void {
    rs.r.bytes += p.wireBytes;
    rs.r.endNs = p.endNs;
    if (p.gapBytes > 0 && p.lost && !rs.r.notes.includes(NOTE_RESPONSE_LOSS)) rs.r.notes.push(NOTE_RESPONSE_LOSS);
  }

  /** One packet of the response in progress; true when it completes the response. */
  private step(head: Pending, rs: RespState, p: Packet): boolean {
    const h = p.head;
    const b0 = h.length > 0 ? h[0] : -1;
    const r = rs.r;
    if (b0 === 0xff) {
      // no row or definition starts with 0xff: an ERR ends the response wherever it comes
      if (h.length >= 3 && h.readUInt16LE(1) === 0xffff) return false; // MariaDB progress report
      this.setError(r, h);
      return true;
    }
    switch (rs.state) {
      case 'first':
        return this.first(head, rs, p, b0);
      case 'columns': {
        this.columnDef(rs, h);
        if (--rs.remaining <= 0) rs.state = 'afterColumns';
        return false;
      }
      case 'afterColumns':
        if (b0 === 0xfe && p.physical === 1) {
          if (p.length < 7) {
            this.deprecateEof ??= false;
            if (eofStatus(h) & STATUS.CURSOR_EXISTS) return true;
            rs.state = 'rows';
            return false;
          }
          this.deprecateEof ??= true;
          return this.terminal(rs, h, p);
        }
        this.deprecateEof ??= true;
        rs.state = 'rows';
        this.row(rs, p);
        return false;
      case 'rows':
        if (b0 === 0xfe && p.physical === 1 && p.length < MAX_PACKET) return this.terminal(rs, h, p);
        this.row(rs, p);
        return false;
      case 'prepParams':
        if (--rs.remaining <= 0) return this.afterPrepParams(rs);
        return false;
      case 'prepParamsEof':
        if (rs.prepare && rs.prepare.numColumns > 0) {
          rs.state = 'prepCols';
          rs.remaining = rs.prepare.numColumns;
          return false;
        }
        return true;
      case 'prepCols':
        if (b0 === 0xfe && p.length < 9 && this.deprecateEof === undefined) {
          // unknown capabilities: the EOF after the parameters
          this.deprecateEof = false;
          return false;
        }
        this.prepColumn(rs, h);
        if (--rs.remaining <= 0) {
          if (this.deprecateEof === true) return true;
          rs.state = this.deprecateEof === false ? 'prepColsEof' : 'maybeDone';
        }
        return false;
      case 'prepColsEof':
        return true;
      case 'maybeDone':
        return true;
      case 'infile':
        if (b0 === 0x00) {
          this.applyOk(rs, h);
          r.kind = 'ok';
          return true;
        }
        return false;
      case 'fieldList':
        if (b0 === 0xfe && p.length < 9) return true;
        this.columnDef(rs, h);
        return false;
    }
    return true;
  }

  private first(head: Pending, rs: RespState, p: Packet, b0: number): boolean {
    const r = rs.r;
    const h = p.head;
    switch (head.expect) {
      case 'string':
        r.kind = 'other';
        return true;
      case 'auth':
        if (b0 === 0x00) {
          this.applyOk(rs, h);
          r.kind = 'ok';
          if (head.req.user !== undefined) this.user = head.req.user;
          this.database = head.req.schema;
          return true;
        }
        return b0 !== 0xfe && b0 !== 0x01;
      case 'prepare': {
        const ok = b0 === 0x00 ? parsePrepareOk(h) : undefined;
        if (!ok) {
          r.kind = 'other';
          return true;
        }
        r.kind = 'prepare';
        r.statementId = ok.statementId;
        r.numParams = ok.numParams;
        r.numFields = ok.numColumns;
        const sql = head.req.query;
        const stmt: Statement = {
          sql,
          method: sqlMethod(sql),
          numParams: ok.numParams,
          numColumns: ok.numColumns,
          bytes: Buffer.byteLength(sql) + 64,
        };
        this.rememberStatement(ok.statementId, stmt);
        this.lastStatementId = ok.statementId;
        rs.prepare = { statementId: ok.statementId, numParams: ok.numParams, numColumns: ok.numColumns, stmt };
        if (ok.numParams > 0) {
          rs.state = 'prepParams';
          rs.remaining = ok.numParams;
          return false;
        }
        if (ok.numColumns > 0) {
          rs.state = 'prepCols';
          rs.remaining = ok.numColumns;
          return false;
        }
        return true;
      }
      case 'fieldlist':
        if (b0 === 0xfe && p.length < 9) {
          r.kind = 'eof';
          return true;
        }
        r.kind = 'resultset';
        rs.state = 'fieldList';
        this.columnDef(rs, h);
        return false;
      case 'resultset':
      case 'binary':
      case 'fetch': {
        if (b0 === 0x00) {
          const ok = this.applyOk(rs, h);
          if (rs.sets === 0) r.kind = 'ok';
          if (ok && ok.status & STATUS.MORE_RESULTS_EXISTS) {
            r.numResults++;
            return false;
          }
          return true;
        }
        if (b0 === 0xfe && p.length < 9) {
          if (rs.sets === 0) r.kind = 'eof';
          return (eofStatus(h) & STATUS.MORE_RESULTS_EXISTS) === 0;
        }
        if (b0 === 0xfb && head.expect === 'resultset') {
          rs.state = 'infile';
          return false;
        }
        const c = new Cursor(h);
        const count = c.lenenc();
        if (count === undefined || count === null || count === 0) {
          r.kind = rs.sets === 0 ? 'other' : r.kind;
          return true;
        }
        // MySQL CLIENT_OPTIONAL_RESULTSET_METADATA / MariaDB metadata cache: a flag byte follows
        const metadataFollows = c.left > 0 ? h[c.pos] !== 0 : true;
        r.kind = 'resultset';
        r.numResults++;
        rs.sets++;
        if (rs.sets === 1) {
          r.numFields = count;
          if (this.sendResponse && this.maxRows > 0) {
            rs.collect = true;
            r.fields = [];
            r.rows = [];
          }
        } else rs.collect = false;
        rs.colTypes = rs.binary ? [] : undefined;
        if (metadataFollows) {
          rs.state = 'columns';
          rs.remaining = count;
        } else {
          rs.state = 'afterColumns';
          if (rs.binary) rs.colTypes = head.stmt?.columnTypes;
          if (rs.collect && r.fields && head.stmt?.columnTypes === undefined) rs.collect = false;
        }
        return false;
      }
      case 'simple':
        if (b0 === 0x00) {
          this.applyOk(rs, h);
          r.kind = 'ok';
        } else if (b0 === 0xfe && p.length < 9) r.kind = 'eof';
        else r.kind = 'other';
        return true;
    }
    return true;
  }

  private afterPrepParams(rs: RespState): boolean {
    const cols = rs.prepare?.numColumns ?? 0;
    if (this.deprecateEof === false) {
      rs.state = 'prepParamsEof';
      return false;
    }
    if (cols > 0) {
      // with unknown capabilities, an EOF may come first (handled in prepCols)
      rs.state = 'prepCols';
      rs.remaining = cols;
      return false;
    }
    if (this.deprecateEof === true) return true;
    rs.state = 'maybeDone';
    return false;
  }

  private prepColumn(rs: RespState, h: Buffer): void {
    const col = parseColumnDef(h, false, this.extendedMetadata);
    const stmt = rs.prepare?.stmt;
    if (!col || !stmt) return;
    (stmt.columnTypes ??= []).push({ type: col.type, unsigned: (col.flags & UNSIGNED_FLAG) !== 0 });
  }

  private columnDef(rs: RespState, h: Buffer): void {
    const col = parseColumnDef(h, rs.collect, this.extendedMetadata);
    if (!col) return;
    if (col.table) {
      const path = col.schema ? `${col.schema}.${col.table}` : col.table;
      if (!rs.r.tables.includes(path) && rs.r.tables.length < 64) rs.r.tables.push(path);
    }
    if (rs.collect) rs.r.fields?.push(col.name);
    if (rs.colTypes) rs.colTypes.push({ type: col.type, unsigned: (col.flags & UNSIGNED_FLAG) !== 0 });
  }

  private row(rs: RespState, p: Packet): void {
    rs.r.numRows++;
    const rows = rs.r.rows;
    if (!rs.collect || !rows || rows.length >= this.maxRows || p.head.length === 0) return;
    if (rs.binary) {
      if (rs.colTypes && rs.colTypes.length > 0) rows.push(decodeBinaryRow(p.head, rs.colTypes, this.maxRowLength));
    } else rows.push(decodeTextRow(p.head, this.maxRowLength));
  }

  /** EOF or OK (0xfe) closing a result set. */
  private terminal(rs: RespState, h: Buffer, p: Packet): boolean {
    let status: number;
    if (p.length < 7) status = eofStatus(h);
    else {
      const ok = this.applyOk(rs, h);
      status = ok?.status ?? 0;
    }
    if (status & STATUS.MORE_RESULTS_EXISTS) {
      rs.state = 'first';
      rs.collect = false;
      return false;
    }
    return true;
  }

  private applyOk(rs: RespState, h: Buffer) {
    const ok = parseOk(h, this.effectiveCaps);
    if (!ok) return undefined;
    rs.r.affectedRows = ok.affectedRows;
    rs.r.insertId = ok.insertId;
    rs.r.warnings = ok.warnings;
    if (ok.schema !== undefined) this.database = ok.schema;
    else {
      const head = this.pendingQ[0];
      if (head && head.resp === rs) {
        if (head.req.command === COM.INIT_DB) this.database = head.req.schema;
        else if (head.req.command === COM.QUERY) {
          const schema = useStatementSchema(head.req.query);
          if (schema !== undefined) this.database = schema;
        }
      }
    }
    return ok;
  }

  private setError(r: MysqlResponse, h: Buffer): void {
    const err = parseErr(h);
    r.kind = 'error';
    r.errorCode = err.code;
    r.sqlState = err.sqlState;
    r.errorMessage = err.message;
  }

  // ---- compressed protocol ----------------------------------------------------------

  private startCompressed(): void {
    this.phase = 'compressed';
    const base = { client: this.client.offset, server: this.server.offset };
    this.client.stop();
    this.server.stop();
    this.error('MySQL compressed protocol negotiated: commands are reported without decoding', false);
    this.compressed = {
      client: new CompressedFramer(base.client, (c) => this.onCompressedClient(c), () => this.compressedLost()),
      server: new CompressedFramer(base.server, (c) => this.onCompressedServer(c), () => this.compressedLost()),
    };
  }

  private compressedLost(): void {
    const c = this.compressed;
    if (!c) return;
    if (c.current) this.emitCompressed();
    c.client.stop();
    c.server.stop();
  }

  private onCompressedClient(c: CompressedPacket): void {
    const st = this.compressed!;
    if (c.seq !== 0) {
      if (st.current) {
        st.current.req.bytes += c.wireBytes;
        st.current.req.endNs = c.endNs;
      }
      return;
    }
    if (st.current) this.emitCompressed();
    // COM_QUIT is sent uncompressed: no answer comes
    if (c.uncompressedLength === 0 && c.head.length >= 5 && c.head.readUIntLE(0, 3) === 1 && c.head[3] === 0 && c.head[4] === COM.QUIT) return;
    const req: MysqlRequest = {
      startNs: c.startNs,
      endNs: c.endNs,
      bytes: c.wireBytes,
      streamOffset: c.streamOffset,
      notes: [],
      command: -1,
      commandName: 'COMPRESSED',
      method: '',
      query: '',
      isSql: false,
    };
    st.current = { req, user: this.user, database: this.database };
  }

  private onCompressedServer(c: CompressedPacket): void {
    const cur = this.compressed!.current;
    if (!cur) return;
    if (!cur.resp) {
      cur.resp = {
        kind: 'other',
        startNs: c.startNs,
        endNs: c.endNs,
        bytes: 0,
        streamOffset: c.streamOffset,
        notes: [],
        affectedRows: 0,
        insertId: 0,
        numFields: 0,
        numRows: 0,
        numResults: 0,
        tables: [],
        warnings: 0,
      };
    }
    cur.resp.bytes += c.wireBytes;
    cur.resp.endNs = c.endNs;
  }

  private emitCompressed(): void {
    const st = this.compressed!;
    const cur = st.current;
    st.current = undefined;
    if (!cur) return;
    const data: MysqlData = { request: cur.req, response: cur.resp, compressed: true };
    if (cur.user !== undefined) data.user = cur.user;
    if (cur.database !== undefined) data.database = cur.database;
    if (this.serverVersion !== undefined) data.serverVersion = this.serverVersion;
    const { req, resp } = cur;
    this.deliver({
      request: { startNs: req.startNs, endNs: req.endNs, bytes: req.bytes, streamOffset: req.streamOffset },
      response: resp && { startNs: resp.startNs, endNs: resp.endNs, bytes: resp.bytes, streamOffset: resp.streamOffset },
      notes: resp ? [NOTE_COMPRESSED] : [NOTE_COMPRESSED, NOTE_UNMATCHED_REQUEST],
      data,
    });
  }
}

interface CompressedPacket {
  seq: number;
  uncompressedLength: number;
  /** Up to 16 payload bytes. */
  head: Buffer;
  wireBytes: number;
  startNs: number;
  endNs: number;
  streamOffset: number;
}

/** Framing of the compressed protocol: 3-byte compressed length, sequence id, 3-byte uncompressed length. */
class CompressedFramer {
  private readonly hdr = Buffer.alloc(7);
  private hdrFill = 0;
  private remaining = 0;
  private inPayload = false;
  private cur?: CompressedPacket;
  private readonly headBuf = Buffer.alloc(16);
  private headFill = 0;
  private off = false;

  constructor(
    private offset: number,
    private readonly onPacket: (p: CompressedPacket) => void,
    private readonly onLost: () => void,
  ) {}

  bufferedBytes(): number {
    return this.hdrFill + this.headFill;
  }

  stop(): void {
    this.off = true;
  }

  feed(data: Buffer, ts: number): void {
    if (this.off) return;
    let i = 0;
    while (i < data.length && !this.off) {
      if (!this.inPayload) {
        if (this.hdrFill === 0) {
          this.cur = { seq: 0, uncompressedLength: 0, head: this.headBuf, wireBytes: 0, startNs: ts, endNs: ts, streamOffset: this.offset + i };
          this.headFill = 0;
        }
        const take = Math.min(7 - this.hdrFill, data.length - i);
        data.copy(this.hdr, this.hdrFill, i, i + take);
        this.hdrFill += take;
        i += take;
        if (this.hdrFill < 7) break;
        this.hdrFill = 0;
        const cur = this.cur!;
        this.remaining = this.hdr.readUIntLE(0, 3);
        cur.seq = this.hdr[3];
        cur.uncompressedLength = this.hdr.readUIntLE(4, 3);
        cur.wireBytes = 7;
        this.inPayload = true;
        if (this.remaining === 0) this.complete(ts);
        continue;
      }
      const take = Math.min(this.remaining, data.length - i);
      if (this.headFill < 16) {
        const h = Math.min(take, 16 - this.headFill);
        data.copy(this.headBuf, this.headFill, i, i + h);
        this.headFill += h;
      }
      i += take;
      this.remaining -= take;
      this.cur!.wireBytes += take;
      this.cur!.endNs = ts;
      if (this.remaining === 0) this.complete(ts);
    }
    this.offset += data.length;
  }

  gap(length: number, _lost: boolean, ts: number): void {
    this.offset += length;
    if (this.off) return;
    if (this.inPayload && length <= this.remaining) {
      this.remaining -= length;
      this.cur!.wireBytes += length;
      this.cur!.endNs = ts;
      if (this.remaining === 0) this.complete(ts);
      return;
    }
    this.off = true;
    this.onLost();
  }

  private complete(ts: number): void {
    const cur = this.cur!;
    cur.endNs = ts;
    cur.head = this.headBuf.subarray(0, this.headFill);
    this.inPayload = false;
    this.onPacket(cur);
    this.headFill = 0;
  }
}
