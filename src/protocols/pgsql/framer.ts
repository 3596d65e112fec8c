/**
 * Splits one direction of a PostgreSQL connection into protocol messages.
 *
 * Typed messages are a type byte, an int32 length (counting itself) and a
 * body; the client's first messages (StartupMessage, SSLRequest,
 * GSSENCRequest, CancelRequest) have no type byte; the server answers an
 * SSLRequest/GSSENCRequest with one byte ('S', 'G' or 'N').
 *
 * The framer copies nothing it does not have to: a message wholly inside one
 * feed is handed over as a view of the caller's Buffer; one split across feeds
 * keeps only the head of its body that the session asked for (`keep`), the
 * rest is counted. Gaps inside a body keep sync (the length prefix says where
 * the next message starts); a gap across a message boundary, or bytes that do
 * not frame, switch to resync: the framer looks for a position where a valid
 * header (type byte known for this direction, length plausible for the type)
 * is followed by another valid header or by the end of the feed.
 */

/** Untyped client packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest). */
export const T_STARTUP = 0x100;
/** The server's one-byte answer to SSLRequest/GSSENCRequest ('S', 'G', 'N'): `code` holds the byte. */
export const T_SSL_REPLY = 0x101;
/** A TLS record where a PostgreSQL message was expected (direct TLS, or a missed 'S'). */
export const T_TLS = 0x102;

export const CODE_SSL = 80877103;
export const CODE_GSSENC = 80877104;
export const CODE_CANCEL = 80877102;
/** Protocol 3.0; 3.2 (PostgreSQL 18) is 196610. */
export const CODE_V3 = 196608;

/** One message as the framer saw it. */
export interface Frame {
  /** Type byte, or T_STARTUP / T_SSL_REPLY / T_TLS. */
  type: number;
  /** Startup packets: the protocol code; T_SSL_REPLY: the reply byte. */
  code: number;
  /** Bytes on the wire (type byte and length word included). */
  length: number;
  /** The kept head of the body (after the length word; after the code for startup packets). */
  body: Buffer;
  /** `body` is the whole body. */
  complete: boolean;
  /** Some bytes of the message were not captured ... */
  gap: boolean;
  /** ... and some of those were lost (not just left out by design). */
  lost: boolean;
  /** Stream offset of the first byte. */
  offset: number;
  startNs: number;
  endNs: number;
}

export interface FramerSink {
  frame(f: Frame): void;
  /** Bytes that belong to no frame (a gap across a boundary, or garbage skipped while resynchronising). */
  skipped(bytes: number, lost: boolean, tsNs: number): void;
  /** The stream did not frame; `fatal`: the framer gave up on it. */
  garbage(reason: string, fatal: boolean): void;
}

/** How many body bytes to keep for a message of `type` whose body is `bodyLength` bytes. */
export type KeepPolicy = (type: number, bodyLength: number) => number;

export const enum FramerMode {
  /** Client: an untyped startup packet is expected (the client's first bytes). */
  Startup,
  /** Server: the one-byte answer to SSLRequest/GSSENCRequest is expected. */
  SslReply,
  Typed,
  Resync,
  /** Encrypted, given up, or ended: bytes are only counted. */
  Off,
}

const ONE_GIB = 1 << 30;
const MIB = 1 << 20;
/** Continuous garbage after which the framer gives up on the stream. */
const MAX_GARBAGE = 4 * MIB;
/** Longest startup packet accepted (the server's own limit is 10000). */
const MAX_STARTUP = 10000;

/** [min, max] of the length word, per type byte; 0 max = unknown type. */
function lengthTable(entries: Array<[string, number, number]>): { min: Int32Array; max: Int32Array } {
  const min = new Int32Array(256);
  const max = new Int32Array(256);
  for (const [t, lo, hi] of entries) {
    min[t.charCodeAt(0)] = lo;
    max[t.charCodeAt(0)] = hi;
  }
  return { min, max };
}

const NAME_MAX = 4 + 1 + 1024;

/** Frontend (client) messages. */
const FRONTEND = lengthTable([
  ['Q', 5, ONE_GIB], // Query
  ['P', 8, ONE_GIB], // Parse
  ['B', 12, ONE_GIB], // Bind
  ['D', 6, NAME_MAX], // Describe
  ['E', 9, NAME_MAX + 4], // Execute
  ['C', 6, NAME_MAX], // Close
  ['S', 4, 4], // Sync
  ['H', 4, 4], // Flush
  ['X', 4, 4], // Terminate
  ['c', 4, 4], // CopyDone
  ['d', 4, ONE_GIB], // CopyData
  ['f', 5, ONE_GIB], // CopyFail
  ['F', 14, ONE_GIB], // FunctionCall
  ['p', 4, 16 * MIB], // PasswordMessage, SASL*, GSSResponse
]);

/** Backend (server) messages. */
const BACKEND = lengthTable([
  ['R', 8, 16 * MIB], // Authentication*
  ['K', 8, 4 + 4 + 256], // BackendKeyData (3.2: longer keys)
  ['S', 6, MIB], // ParameterStatus
  ['Z', 5, 5], // ReadyForQuery
  ['T', 6, 256 * MIB], // RowDescription
  ['D', 6, ONE_GIB], // DataRow
  ['C', 5, NAME_MAX], // CommandComplete
  ['I', 4, 4], // EmptyQueryResponse
  ['E', 5, 16 * MIB], // ErrorResponse
  ['N', 5, 16 * MIB], // NoticeResponse
  ['A', 10, ONE_GIB], // NotificationResponse
  ['1', 4, 4], // ParseComplete
  ['2', 4, 4], // BindComplete
  ['3', 4, 4], // CloseComplete
  ['n', 4, 4], // NoData
  ['s', 4, 4], // PortalSuspended
  ['t', 6, 4 + 2 + 4 * 65535], // ParameterDescription
  ['G', 7, 4 + 3 + 2 * 65535], // CopyInResponse
  ['H', 7, 4 + 3 + 2 * 65535], // CopyOutResponse
  ['W', 7, 4 + 3 + 2 * 65535], // CopyBothResponse
  ['d', 4, ONE_GIB], // CopyData
  ['c', 4, 4], // CopyDone
  ['V', 8, ONE_GIB], // FunctionCallResponse
  ['v', 12, MIB], // NegotiateProtocolVersion
]);

function validStartupCode(code: number, len: number): boolean {
  if (code === CODE_SSL || code === CODE_GSSENC) return len === 8;
  if (code === CODE_CANCEL) return len >= 16 && len <= 16 + 256;
  // protocol 3.x (minor 0..2) and the old 2.0 (only recognised, not decoded)
  return (code >>> 16 === 3 && (code & 0xffff) <= 2) || code === 0x20000;
}

/** A TLS record header: handshake/alert/application data, version 3.x. */
function looksLikeTls(b: Buffer, i: number): boolean {
  const t = b[i];
  return (t === 0x16 || t === 0x15 || t === 0x17) && b[i + 1] === 0x03 && (b[i + 2] as number) <= 0x04;
}

const EMPTY = Buffer.alloc(0);

export class Framer {
  mode: FramerMode;
  /** Bytes of this direction fed or gapped so far. */
  private pos = 0;
  private readonly table: { min: Int32Array; max: Int32Array };

  /** Header bytes split across feeds. */
  private readonly hdr = Buffer.alloc(8);
  private hlen = 0;
  private hStartNs = 0;
  private hOffset = 0;

  /** The message whose body is being read. */
  private inBody = false;
  private type = 0;
  private code = 0;
  private length = 0;
  private remaining = 0;
  private bodyLen = 0;
  private kbuf: Buffer | null = null;
  private klen = 0;
  private keepTarget = 0;
  private keepStopped = false;
  private gapSeen = false;
  private lostSeen = false;
  private msgOffset = 0;
  private msgStartNs = 0;
  private msgEndNs = 0;

  /** Garbage bytes since the last good frame, and whether the run was reported. */
  private garbageRun = 0;
  private garbageReported = false;

  constructor(
    readonly isClient: boolean,
    private readonly sink: FramerSink,
    private readonly keep: KeepPolicy,
  ) {
    this.table = isClient ? FRONTEND : BACKEND;
    this.mode = isClient ? FramerMode.Startup : FramerMode.Typed;
  }

  bufferedBytes(): number {
    return this.hlen + (this.kbuf ? this.kbuf.length : 0);
  }

  /** Stream offset of the next byte. */
  position(): number {
    return this.pos;
  }

  /** Stop framing: bytes from now on are only counted. */
  off(): void {
    this.mode = FramerMode.Off;
    this.inBody = false;
    this.kbuf = null;
    this.hlen = 0;
  }

  feed(data: Buffer, ts: number): void {
    const n = data.length;
    const base = this.pos;
    this.pos += n;
    let p = 0;
    while (p < n) {
      if (this.inBody) {
        p = this.feedBody(data, p, ts);
        continue;
      }
      switch (this.mode) {
        case FramerMode.Off:
          return;
        case FramerMode.Resync:
          p = this.feedResync(data, p, ts);
          break;
        case FramerMode.SslReply:
          p = this.feedSslReply(data, p, base, ts);
          break;
        default:
          p = this.feedHeader(data, p, base, ts);
          break;
      }
    }
  }

  gap(length: number, ts: number, lost: boolean): void {
    this.pos += length;
    if (this.mode === FramerMode.Off) return;
    if (this.inBody) {
      const inside = Math.min(length, this.remaining);
      this.remaining -= inside;
      this.gapSeen = true;
      this.lostSeen ||= lost;
      this.keepStopped = true;
      this.msgEndNs = ts;
      if (this.remaining === 0) this.deliverBuffered();
      if (length > inside) {
        this.sink.skipped(length - inside, lost, ts);
        this.enterResync(true);
      }
      return;
    }
    const partial = this.hlen;
    this.hlen = 0;
    this.sink.skipped(length + partial, lost, ts);
    if (this.mode !== FramerMode.Resync) this.enterResync(true);
  }

  end(): void {
    // a message cut by the end of the stream is dropped
    this.inBody = false;
    this.kbuf = null;
    this.hlen = 0;
    this.mode = FramerMode.Off;
  }

  // ---- headers -----------------------------------------------------------------

  /** Header size for a message whose first byte is `first`. */
  private headerSize(first: number): number {
    return this.mode === FramerMode.Startup && first === 0 ? 8 : 5;
  }

  private feedHeader(data: Buffer, p: number, base: number, ts: number): number {
    const n = data.length;
    if (this.hlen === 0) {
      const need = this.headerSize(data[p] as number);
      if (n - p >= need) return this.header(data, p, base + p, ts, data, p + need, ts, 0, p);
      this.hStartNs = ts;
      this.hOffset = base + p;
    }
    const need = this.headerSize(this.hlen > 0 ? (this.hdr[0] as number) : (data[p] as number));
    const before = this.hlen;
    const take = Math.min(need - this.hlen, n - p);
    data.copy(this.hdr, this.hlen, p, p + take);
    this.hlen += take;
    if (this.hlen < need) return p + take;
    this.hlen = 0;
    return this.header(this.hdr, 0, this.hOffset, this.hStartNs, data, p + take, ts, before, p);
  }

  /**
   * A complete header at hb[hp..]; the body starts in `data` at `bodyAt`.
   * `carried` header bytes came from earlier feeds; `rescanAt` is where this
   * feed's part of the header began (where a resync scan restarts).
   */
  private header(
    hb: Buffer,
    hp: number,
    offset: number,
    startNs: number,
    data: Buffer,
    bodyAt: number,
    ts: number,
    carried: number,
    rescanAt: number,
  ): number {
    const first = hb[hp] as number;
    if (this.mode === FramerMode.Startup) {
      if (first === 0) {
        const len = hb.readInt32BE(hp);
        const code = hb.readInt32BE(hp + 4);
        if (len >= 8 && len <= MAX_STARTUP && validStartupCode(code, len)) {
          return this.startBody(T_STARTUP, code, len, 8, offset, startNs, data, bodyAt, ts);
        }
        return this.badHeader(hb, hp, offset, data, carried, rescanAt, ts);
      }
      this.mode = FramerMode.Typed; // joined mid-stream: typed messages from the start
    }
    const len = hb.readInt32BE(hp + 1);
    const max = this.table.max[first] as number;
    if (max === 0 || len < (this.table.min[first] as number) || len > max) {
      return this.badHeader(hb, hp, offset, data, carried, rescanAt, ts);
    }
    return this.startBody(first, 0, len + 1, 5, offset, startNs, data, bodyAt, ts);
  }

  private startBody(
    type: number,
    code: number,
    length: number,
    headLen: number,
    offset: number,
    startNs: number,
    data: Buffer,
    p: number,
    ts: number,
  ): number {
    this.garbageRun = 0;
    this.garbageReported = false;
    const bodyLen = length - headLen;
    const keep = Math.max(0, Math.min(bodyLen, this.keep(type, bodyLen)));
    if (data.length - p >= bodyLen) {
      // the whole body is in this feed: no copy
      this.sink.frame({
        type,
        code,
        length,
        body: keep > 0 ? data.subarray(p, p + keep) : EMPTY,
        complete: keep === bodyLen,
        gap: false,
        lost: false,
        offset,
        startNs,
        endNs: ts,
      });
      return p + bodyLen;
    }
    this.inBody = true;
    this.type = type;
    this.code = code;
    this.length = length;
    this.remaining = bodyLen;
    this.bodyLen = bodyLen;
    this.keepTarget = keep;
    this.kbuf = keep > 0 ? Buffer.allocUnsafe(keep) : null;
    this.klen = 0;
    this.keepStopped = false;
    this.gapSeen = false;
    this.lostSeen = false;
    this.msgOffset = offset;
    this.msgStartNs = startNs;
    this.msgEndNs = ts;
    return p;
  }

  private feedBody(data: Buffer, p: number, ts: number): number {
    const take = Math.min(this.remaining, data.length - p);
    if (!this.keepStopped && this.kbuf && this.klen < this.keepTarget) {
      const k = Math.min(take, this.keepTarget - this.klen);
      data.copy(this.kbuf, this.klen, p, p + k);
      this.klen += k;
    }
    this.remaining -= take;
    this.msgEndNs = ts;
    if (this.remaining === 0) this.deliverBuffered();
    return p + take;
  }

  private deliverBuffered(): void {
    this.inBody = false;
    const body = this.kbuf ? this.kbuf.subarray(0, this.klen) : EMPTY;
    this.kbuf = null;
    const f: Frame = {
      type: this.type,
      code: this.code,
      length: this.length,
      body,
      complete: this.klen === this.bodyLen,
      gap: this.gapSeen,
      lost: this.lostSeen,
      offset: this.msgOffset,
      startNs: this.msgStartNs,
      endNs: this.msgEndNs,
    };
    this.sink.frame(f);
  }

  private badHeader(hb: Buffer, hp: number, offset: number, data: Buffer, carried: number, rescanAt: number, ts: number): number {
    // TLS where PostgreSQL was expected: direct TLS, or the 'S' answer to an SSLRequest we missed
    const c = hb[hp] as number;
    const tls = looksLikeTls(hb, hp) || (!this.isClient && (c === 0x53 || c === 0x47) && looksLikeTls(hb, hp + 1));
    if (tls) {
      this.sink.frame({ type: T_TLS, code: 0, length: 0, body: EMPTY, complete: true, gap: false, lost: false, offset, startNs: ts, endNs: ts });
      this.off();
      return data.length;
    }
    this.noteGarbage(`invalid ${this.isClient ? 'client' : 'server'} message header`);
    this.mode = FramerMode.Resync;
    // drop the header's first byte (and any bytes of it from earlier feeds); rescan the rest
    const resume = carried > 0 ? rescanAt : rescanAt + 1;
    this.countGarbage(carried > 0 ? carried : 1, ts);
    return (this.mode as FramerMode) === FramerMode.Off ? data.length : resume;
  }

  private noteGarbage(reason: string): void {
    if (!this.garbageReported) {
      this.garbageReported = true;
      this.sink.garbage(reason, false);
    }
  }

  private enterResync(afterGap: boolean): void {
    this.inBody = false;
    this.kbuf = null;
    this.hlen = 0;
    this.mode = FramerMode.Resync;
    // a gap is not garbage: the next feed most likely starts at a message
    if (afterGap) this.garbageReported = true;
  }

  // ---- SSL reply --------------------------------------------------------------

  /** The client sent SSLRequest/GSSENCRequest: the next server byte is the answer. */
  expectSslReply(): void {
    if (this.mode === FramerMode.Typed && !this.inBody && this.hlen === 0) this.mode = FramerMode.SslReply;
  }

  private feedSslReply(data: Buffer, p: number, base: number, ts: number): number {
    const c = data[p] as number;
    if (c === 0x53 || c === 0x4e || c === 0x47) {
      // 'S', 'N', 'G'; the session decides what comes next (default: typed)
      this.mode = FramerMode.Typed;
      this.sink.frame({ type: T_SSL_REPLY, code: c, length: 1, body: EMPTY, complete: true, gap: false, lost: false, offset: base + p, startNs: ts, endNs: ts });
      return p + 1;
    }
    // e.g. an ErrorResponse from a server that does not know the request
    this.mode = FramerMode.Typed;
    return p;
  }

  // ---- resync -----------------------------------------------------------------

  /** Plausible typed header at data[i] (needs 5 bytes). */
  private validAt(data: Buffer, i: number): number {
    const t = data[i] as number;
    const max = this.table.max[t] as number;
    if (max === 0) return -1;
    const len = data.readInt32BE(i + 1);
    if (len < (this.table.min[t] as number) || len > max) return -1;
    return len + 1;
  }

  private feedResync(data: Buffer, p: number, ts: number): number {
    const n = data.length;
    for (let i = p; i + 5 <= n; i++) {
      const len = this.validAt(data, i);
      if (len < 0) continue;
      const next = i + len;
      let ok: boolean;
      if (next === n) ok = true;
      else if (next + 5 <= n) ok = this.validAt(data, next) > 0;
      else if (next < n) ok = (this.table.max[data[next] as number] as number) > 0;
      // the message runs past this feed: accept only a sane length at the feed's start
      else ok = i === p && len <= 16 * MIB;
      if (!ok) continue;
      if (i > p) this.skipGarbage(i - p, ts);
      this.mode = FramerMode.Typed;
      this.garbageReported = false;
      return i;
    }
    this.skipGarbage(n - p, ts);
    return n;
  }

  private skipGarbage(bytes: number, ts: number): void {
    if (!this.garbageReported) this.noteGarbage(`unframed ${this.isClient ? 'client' : 'server'} bytes`);
    this.countGarbage(bytes, ts);
  }

  private countGarbage(bytes: number, ts: number): void {
    this.sink.skipped(bytes, false, ts);
    this.garbageRun += bytes;
    if (this.garbageRun > MAX_GARBAGE) {
      this.sink.garbage(`no PostgreSQL message found in ${this.garbageRun} ${this.isClient ? 'client' : 'server'} bytes; giving up`, true);
      this.off();
    }
  }
}
