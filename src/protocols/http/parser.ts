/**
 * Incremental HTTP/1.x parser for one TCP connection.
 *
 * Each direction (client → requests, server → responses) runs its own state
 * machine: start line → header lines → body (content-length | chunked |
 * until-close | none) → message done. Input may be split at any byte; the
 * result is the same as feeding it whole.
 *
 * Cost model: start lines and chunk-size lines are walked byte by byte (they
 * are short); header lines are found with `indexOf('\n')` and turned into a
 * string once per message; body bytes are only counted, except the first
 * `maxBodyBytes`, which are copied. Header text split across feeds is kept in
 * one growing buffer per direction, bounded by `maxHeaderBytes`.
 *
 * Gaps (bytes not captured) inside a body are skipped without losing sync.
 * Anywhere else the partial message is dropped and the direction
 * resynchronises: it discards bytes until a line starts with something that
 * parses as a start line. Garbage is reported once per run through
 * `onError(reason, false)`; HTTP/2, `101 Switching Protocols` and a 2xx
 * answer to CONNECT end HTTP parsing of the connection.
 */
import type { ParserSink, ProtocolParser, Sender } from '../types';
import type { HttpMessage, HttpParserOptions, HttpRequest, HttpResponse } from './types';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const SEMI = 0x3b;

const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
const DEFAULT_MAX_BODY_BYTES = 1024;
/** Request methods remembered while waiting for their responses. */
const MAX_PENDING_METHODS = 1024;
/** Longest accepted method token. */
const MAX_METHOD_LEN = 20;
/** Longest accepted chunk-size line (size + extensions). */
const MAX_CHUNK_LINE = 4096;
/** Hex digits accepted in a chunk size (16^12 = 256 TiB). */
const MAX_CHUNK_DIGITS = 12;
/** Header buffers larger than this are released after each message. */
const KEEP_HBUF_BYTES = 8 * 1024;

const EMPTY = Buffer.alloc(0);

const enum Mode {
  /** Start line + headers (or idle between messages). */
  Head,
  /** Discarding bytes until a line starts with a start line. */
  Resync,
  /** Content-Length body. */
  Length,
  /** Chunked body: chunk-size line. */
  ChunkSize,
  /** Chunked body: chunk data. */
  ChunkData,
  /** Chunked body: the CRLF after chunk data. */
  ChunkEnd,
  /** Chunked body: trailer section after the last chunk. */
  Trailer,
  /** Response body running until the server closes. */
  Close,
  /** Client bytes after a CONNECT request, until its response decides. */
  Tunnel,
  /** The direction ended; bytes are ignored. */
  Ended,
}

/** Start-line machine results (non-negative: index just past the '\n'). */
const NEED_MORE = -1;
/** Encode "bad byte at index i" as a value below NEED_MORE. */
function bad(i: number): number {
  return -2 - i;
}

const VERSION_BYTES = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/"

function isMethodChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f; // A-Z - _
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Byte k (0..7) of "HTTP/1.x" (or "HTTP/2.0" when allow2). */
function versionByteOk(k: number, c: number, allow2: boolean): boolean {
  if (k < 5) return c === VERSION_BYTES[k];
  if (k === 5) return c === 0x31 || (allow2 && c === 0x32);
  if (k === 6) return c === 0x2e;
  return c === 0x30 || c === 0x31;
}

/** A Content-Length value as a whole number (15 digits at most: exact as a double). */
const DIGITS = /^[0-9]{1,15}$/;

/** What String#trim removes from a header value that can occur in a latin1 head. */
function isWhite(c: number): boolean {
  return c === SP || c === TAB || c === 0x0b || c === 0x0c || c === CR || c === LF || c === 0xa0;
}

/** Header names as sent → trimmed and lower-cased: the same few names recur in every message. */
const headerNames = new Map<string, string>();
const MAX_HEADER_NAMES = 1024;

function headerName(raw: string): string {
  let name = headerNames.get(raw);
  if (name === undefined) {
    name = raw.trim().toLowerCase();
    // hostile traffic may send endless new names: past the bound they are not remembered
    if (headerNames.size < MAX_HEADER_NAMES) headerNames.set(raw, name);
  }
  return name;
}

/**
 * Bounded FIFO of request methods awaiting a response (drops the oldest when
 * full). A ring that starts small and doubles up to MAX_PENDING_METHODS: most
 * connections have one request outstanding, and a full-size ring per parser
 * (8 KiB) was 78 MiB of a 10,000-connection agent's heap.
 */
class MethodQueue {
  private items: string[] = ['', ''];
  private head = 0;
  private count = 0;

  push(method: string): void {
    if (this.count === this.items.length) {
      if (this.items.length < MAX_PENDING_METHODS) this.grow();
      else {
        this.head = (this.head + 1) % this.items.length;
        this.count--;
      }
    }
    this.items[(this.head + this.count) % this.items.length] = method;
    this.count++;
  }

  peek(): string | undefined {
    return this.count > 0 ? this.items[this.head] : undefined;
  }

  shift(): void {
    if (this.count === 0) return;
    this.items[this.head] = '';
    this.head = (this.head + 1) % this.items.length;
    this.count--;
  }

  /** Twice the room (at most MAX_PENDING_METHODS), oldest first. */
  private grow(): void {
    const next = new Array<string>(Math.min(this.items.length * 2, MAX_PENDING_METHODS)).fill('');
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}

/** State of one direction. */
class Direction {
  mode: Mode = Mode.Head;
  /** Head mode: a message's first byte has been seen. */
  msgStarted = false;
  startNs = 0;
  lastNs = 0;
  /** Bytes of this direction fed or skipped before the current feed. */
  streamPos = 0;
  /** Stream offset of the current message's first byte. */
  msgOffset = 0;

  /** Head bytes split across feeds (first `hlen` bytes valid). */
  hbuf: Buffer | null = null;
  hlen = 0;

  /** Start-line machine. */
  slDone = false;
  slState = 0;
  slCount = 0;
  /** Current header/trailer line: bytes so far, and whether its first byte is CR. */
  lineLen = 0;
  lineFirstCR = false;

  /** Message being built (set once its head is parsed). */
  msg: HttpMessage | null = null;
  remaining = 0;
  bodyBytes = 0;
  contentLength = 0;
  gapBytes = 0;
  gapNoted = false;
  bodyBuf: Buffer | null = null;
  bodyKept = 0;
  /** Most body bytes kept for the current message. */
  bodyLimit = 0;
  captureStopped = false;

  /** Chunk-size line machine. */
  csState = 0;
  csDigits = 0;
  csSize = 0;
  csLineLen = 0;
  /** Trailer section bytes so far. */
  trailerBytes = 0;

  /** Resync: the next byte starts a line. */
  atLineStart = false;
  /** A garbage run was already reported (or the resync follows a gap). */
  garbageReported = false;

  constructor(readonly isClient: boolean) {}
}

class HttpParser implements ProtocolParser {
  private readonly maxHeaderBytes: number;
  private readonly maxBodyBytes: number;
  private readonly bodyLimitOf?: (m: HttpMessage) => number;
  private readonly client = new Direction(true);
  private readonly server = new Direction(false);
  private readonly methods = new MethodQueue();
  /** The connection is no longer HTTP (upgrade, tunnel, HTTP/2, internal error). */
  private dead = false;

  constructor(
    private readonly sink: ParserSink<HttpMessage>,
    options: HttpParserOptions,
  ) {
    this.maxHeaderBytes = Math.max(64, Math.floor(options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES));
    this.maxBodyBytes = Math.max(0, Math.floor(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES));
    this.bodyLimitOf = options.bodyLimit;
  }

  feed(from: Sender, data: Buffer, tsNs: number): void {
    if (this.dead) return;
    try {
      const d = from === 'client' ? this.client : this.server;
      const end = data.length;
      let p = 0;
      d.streamPos += end; // offsets below are relative to the old position
      while (p < end && !this.dead) {
        switch (d.mode) {
          case Mode.Head:
            p = this.feedHead(d, data, p, tsNs);
            break;
          case Mode.Resync:
            p = this.feedResync(d, data, p);
            break;
          case Mode.Length:
            p = this.feedLength(d, data, p, tsNs);
            break;
          case Mode.ChunkSize:
            p = this.feedChunkSize(d, data, p, tsNs);
            break;
          case Mode.ChunkData:
            p = this.feedChunkData(d, data, p, tsNs);
            break;
          case Mode.ChunkEnd:
            p = this.feedChunkEnd(d, data, p, tsNs);
            break;
          case Mode.Trailer:
            p = this.feedTrailer(d, data, p, tsNs);
            break;
          case Mode.Close:
            p = this.feedClose(d, data, p, tsNs);
            break;
          default: // Tunnel, Ended
            return;
        }
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  gap(from: Sender, length: number, tsNs: number, lost = true): void {
    if (this.dead || !(length > 0)) return;
    try {
      const d = from === 'client' ? this.client : this.server;
      d.streamPos += length;
      switch (d.mode) {
        case Mode.Head:
          this.quietResync(d); // drops a partial head, if any
          break;
        case Mode.Resync:
          d.atLineStart = true;
          break;
        case Mode.Length: {
          const n = Math.min(length, d.remaining);
          this.gapBody(d, n, tsNs, lost);
          d.remaining -= n;
          if (d.remaining === 0) this.finish(d);
          if (length > n && !this.dead) this.quietResync(d);
          break;
        }
        case Mode.ChunkData: {
          const n = Math.min(length, d.remaining);
          this.gapBody(d, n, tsNs, lost);
          d.remaining -= n;
          const extra = length - n;
          if (extra === 0) {
            if (d.remaining === 0) this.enterChunkEnd(d);
          } else if (extra <= 2) {
            // the gap ends inside the CRLF after the chunk data (a write cut between
            // its head and its tail): that framing is known, the next size line follows
            d.bodyBytes += extra;
            if (extra === 2) this.enterChunkSize(d);
            else {
              this.enterChunkEnd(d);
              d.csState = 1; // the CR was in the gap: LF next
            }
          } else {
            this.quietResync(d); // the gap ate chunk framing
          }
          break;
        }
        case Mode.ChunkSize:
        case Mode.ChunkEnd:
        case Mode.Trailer:
          this.quietResync(d);
          break;
        case Mode.Close:
          this.gapBody(d, length, tsNs, lost);
          d.contentLength += length;
          break;
        default: // Tunnel, Ended
          break;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  end(from: Sender, _tsNs: number): void {
    if (this.dead) return;
    try {
      const d = from === 'client' ? this.client : this.server;
      if (d.mode === Mode.Close) this.finish(d);
      else this.resetMessage(d); // a truncated message is dropped
      d.mode = Mode.Ended;
      d.hbuf = null;
    } catch (err) {
      this.internalError(err);
    }
  }

  bufferedBytes(): number {
    return this.client.hlen + this.server.hlen + this.client.bodyKept + this.server.bodyKept;
  }

  // ---- head --------------------------------------------------------------

  private feedHead(d: Direction, data: Buffer, p: number, ts: number): number {
    const end = data.length;
    if (!d.msgStarted) {
      // tolerate empty lines between messages
      while (p < end && (data[p] === CR || data[p] === LF)) p++;
      if (p === end) return p;
      d.msgStarted = true;
      d.startNs = ts;
      d.msgOffset = d.streamPos - data.length + p;
      d.slDone = false;
      d.slState = 0;
      d.slCount = 0;
      d.hlen = 0;
    }
    const segStart = p;
    const max = this.maxHeaderBytes;

    if (!d.slDone) {
      const r = d.isClient ? this.stepRequestLine(d, data, p, end) : this.stepStatusLine(d, data, p, end);
      if (r === NEED_MORE) {
        if (d.hlen + (end - segStart) > max) return this.headerTooLarge(d, data, end);
        this.appendHead(d, data, segStart, end);
        return end;
      }
      if (r < NEED_MORE) {
        const at = -2 - r;
        this.garbage(d, d.isClient ? 'invalid request line' : 'invalid status line');
        this.resyncAt(d, data, at);
        return at;
      }
      d.slDone = true;
      d.lineLen = 0;
      d.lineFirstCR = false;
      p = r;
    }

    // header lines, until an empty one
    let q = p;
    for (;;) {
      const nl = data.indexOf(LF, q);
      if (nl < 0) {
        if (d.hlen + (end - segStart) > max) return this.headerTooLarge(d, data, end);
        if (end > q) {
          if (d.lineLen === 0) d.lineFirstCR = data[q] === CR;
          d.lineLen += end - q;
        }
        this.appendHead(d, data, segStart, end);
        return end;
      }
      const seg = nl - q;
      const firstCR = d.lineLen === 0 ? seg > 0 && data[q] === CR : d.lineFirstCR;
      const lineLen = d.lineLen + seg;
      q = nl + 1;
      if (d.hlen + (q - segStart) > max) return this.headerTooLarge(d, data, q);
      if (lineLen === 0 || (lineLen === 1 && firstCR)) {
        let buf: Buffer;
        let s: number;
        let e: number;
        if (d.hlen === 0) {
          buf = data;
          s = segStart;
          e = q;
        } else {
          this.appendHead(d, data, segStart, q);
          buf = d.hbuf as Buffer;
          s = 0;
          e = d.hlen;
        }
        d.lastNs = ts;
        this.headDone(d, buf, s, e, data, q);
        return q;
      }
      d.lineLen = 0;
    }
  }

  /** Request line: METHOD SP target SP HTTP/1.x (CR) LF. */
  private stepRequestLine(d: Direction, data: Buffer, p: number, end: number): number {
    for (let i = p; i < end; i++) {
      const c = data[i] as number;
      switch (d.slState) {
        case 0: // method
          if (isMethodChar(c)) {
            if (++d.slCount > MAX_METHOD_LEN) return bad(i);
          } else if (c === SP && d.slCount > 0) {
            d.slState = 1;
          } else {
            return bad(i);
          }
          break;
        case 1: // first byte of the target
          if (c > SP && c !== 0x7f) d.slState = 2;
          else return bad(i);
          break;
        case 2: // target
          if (c === SP) {
            d.slState = 3;
            d.slCount = 0;
          } else if (c <= SP || c === 0x7f) {
            return bad(i);
          }
          break;
        case 3: // version
          if (d.slCount < 8) {
            if (!versionByteOk(d.slCount, c, true)) return bad(i);
            d.slCount++;
          } else if (c === CR) {
            d.slState = 4;
          } else if (c === LF) {
            return i + 1;
          } else {
            return bad(i);
          }
          break;
        default: // CR seen
          return c === LF ? i + 1 : bad(i);
      }
    }
    return NEED_MORE;
  }

  /** Status line: HTTP/1.x SP 3DIGIT [SP reason] (CR) LF. */
  private stepStatusLine(d: Direction, data: Buffer, p: number, end: number): number {
    for (let i = p; i < end; i++) {
      const c = data[i] as number;
      switch (d.slState) {
        case 0: // version
          if (!versionByteOk(d.slCount, c, false)) return bad(i);
          if (++d.slCount === 8) d.slState = 1;
          break;
        case 1: // SP after the version
          if (c !== SP) return bad(i);
          d.slState = 2;
          d.slCount = 0;
          break;
        case 2: // status code
          if (c < 0x30 || c > 0x39) return bad(i);
          if (++d.slCount === 3) d.slState = 3;
          break;
        case 3: // after the code
          if (c === SP) d.slState = 4;
          else if (c === CR) d.slState = 5;
          else if (c === LF) return i + 1;
          else return bad(i);
          break;
        case 4: // reason phrase
          if (c === CR) d.slState = 5;
          else if (c === LF) return i + 1;
          else if ((c < SP && c !== TAB) || c === 0x7f) return bad(i);
          break;
        default: // CR seen
          return c === LF ? i + 1 : bad(i);
      }
    }
    return NEED_MORE;
  }

  private appendHead(d: Direction, data: Buffer, s: number, e: number): void {
    const n = e - s;
    if (n <= 0) return;
    const need = d.hlen + n;
    let buf = d.hbuf;
    if (buf === null || buf.length < need) {
      const size = Math.min(Math.max(need, (buf?.length ?? 0) * 2, 512), this.maxHeaderBytes);
      const grown = Buffer.allocUnsafe(Math.max(size, need));
      if (buf !== null && d.hlen > 0) buf.copy(grown, 0, 0, d.hlen);
      d.hbuf = buf = grown;
    }
    data.copy(buf, d.hlen, s, e);
    d.hlen = need;
  }

  private headerTooLarge(d: Direction, data: Buffer, at: number): number {
    this.report('header too large', false);
    d.garbageReported = true;
    this.resetMessage(d);
    this.resyncAt(d, data, at);
    return at;
  }

  /** A complete head is in buf[s, e); `q` is where the body starts in `data`. */
  private headDone(d: Direction, buf: Buffer, s: number, e: number, data: Buffer, q: number): void {
    const text = buf.toString('latin1', s, e);
    const headerBytes = e - s;
    d.hlen = 0;
    if (d.hbuf !== null && d.hbuf.length > KEEP_HBUF_BYTES) d.hbuf = null;

    let nl = text.indexOf('\n');
    const line = text.substring(0, nl > 0 && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl);
    const headers: Array<[string, string]> = [];
    let pos = nl + 1;
    while (pos < text.length) {
      nl = text.indexOf('\n', pos);
      if (nl < 0) nl = text.length;
      const lineEnd = nl > pos && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
      if (lineEnd > pos) {
        const first = text.charCodeAt(pos);
        const colon = text.indexOf(':', pos);
        // obs-fold continuation lines and lines without a name are ignored
        if (first !== SP && first !== TAB && colon > pos && colon < lineEnd) {
          let vs = colon + 1;
          let ve = lineEnd;
          while (vs < ve && isWhite(text.charCodeAt(vs))) vs++;
          while (ve > vs && isWhite(text.charCodeAt(ve - 1))) ve--;
          headers.push([headerName(text.substring(pos, colon)), text.substring(vs, ve)]);
        }
      }
      pos = nl + 1;
    }

    if (d.isClient) {
      const sp1 = line.indexOf(' ');
      const sp2 = line.lastIndexOf(' ');
      const method = line.substring(0, sp1);
      const target = line.substring(sp1 + 1, sp2);
      const version = line.substring(sp2 + 6);
      if (version === '2.0') {
        if (method === 'PRI' && target === '*') {
          this.stop('http/2');
          return;
        }
        this.badHead(d, 'invalid request line', data, q);
        return;
      }
      d.garbageReported = false;
      // the common fields are written out in both literals (here and for responses):
      // spreading them from a helper's object cost ~3% of the agent's CPU per transaction
      const req: HttpRequest = {
        kind: 'request',
        head: text,
        startNs: d.startNs,
        streamOffset: d.msgOffset,
        endNs: d.lastNs,
        version,
        headers,
        headerBytes,
        bodyBytes: 0,
        contentLength: 0,
        gapBytes: 0,
        body: EMPTY,
        notes: [],
        method,
        target,
      };
      d.msg = req;
      d.bodyLimit = this.bodyLimit(req);
      this.methods.push(method);
      const framing = this.bodyFraming(headers, true);
      if (framing === 'chunked') {
        this.enterChunkSize(d);
      } else if (typeof framing === 'number' && framing > 0) {
        d.mode = Mode.Length;
        d.remaining = framing;
        d.contentLength = framing;
      } else {
        this.finish(d);
      }
      if (method === 'CONNECT' && !this.dead) {
        // what follows is tunnel data unless the server refuses
        if (d.mode === Mode.Head) d.mode = Mode.Tunnel;
      }
      return;
    }

    // response: "HTTP/1.x NNN[ reason]"
    const version = line.substring(5, 8);
    const statusCode = Number(line.substring(9, 12));
    if (statusCode < 100) {
      this.badHead(d, 'invalid status line', data, q);
      return;
    }
    const statusPhrase = line.length > 13 ? line.substring(13) : '';
    d.garbageReported = false;
    const res: HttpResponse = {
      kind: 'response',
      head: text,
      startNs: d.startNs,
      streamOffset: d.msgOffset,
      endNs: d.lastNs,
      version,
      headers,
      headerBytes,
      bodyBytes: 0,
      contentLength: 0,
      gapBytes: 0,
      body: EMPTY,
      notes: [],
      statusCode,
      statusPhrase,
      closeDelimited: false,
    };
    d.msg = res;
    d.bodyLimit = this.bodyLimit(res);

    const interim = statusCode < 200 && statusCode !== 101;
    const method = this.methods.peek();
    if (!interim) this.methods.shift();

    if (statusCode === 101 || (method === 'CONNECT' && statusCode >= 200 && statusCode < 300)) {
      this.finish(d);
      this.stop(null); // no longer HTTP
      return;
    }
    if (method === 'CONNECT' && !interim && this.client.mode === Mode.Tunnel) {
      // the tunnel was refused: the client speaks HTTP again
      this.quietResync(this.client);
    }
    if (interim || statusCode === 204 || statusCode === 304 || method === 'HEAD') {
      this.finish(d);
      return;
    }
    const framing = this.bodyFraming(headers, false);
    if (framing === 'chunked') {
      this.enterChunkSize(d);
    } else if (framing === 'close') {
      res.closeDelimited = true;
      d.mode = Mode.Close;
    } else if (framing > 0) {
      d.mode = Mode.Length;
      d.remaining = framing;
      d.contentLength = framing;
    } else {
      this.finish(d);
    }
  }

  /**
   * How the body is delimited: 'chunked', a byte count (0: no body), or
   * 'close' (responses only: until the server closes).
   */
  private bodyFraming(headers: Array<[string, string]>, isRequest: boolean): 'chunked' | 'close' | number {
    let te: string | undefined;
    let cl: string | undefined;
    for (const [name, value] of headers) {
      if (name === 'transfer-encoding') te = te === undefined ? value : `${te},${value}`;
      else if (name === 'content-length') cl = cl === undefined ? value : `${cl},${value}`;
    }
    if (te !== undefined) {
      const codings = te.split(',');
      const last = (codings[codings.length - 1] as string).trim().toLowerCase();
      if (last === 'chunked') return 'chunked';
      return isRequest ? 0 : 'close';
    }
    if (cl !== undefined) {
      // one plain value (the usual case): no split
      if (DIGITS.test(cl)) return Number(cl);
      let n = -1;
      for (const part of cl.split(',')) {
        const v = part.trim();
        const num = DIGITS.test(v) ? Number(v) : -1;
        if (num < 0 || (n >= 0 && num !== n)) {
          n = -1;
          this.report('invalid content-length', false);
          break;
        }
        n = num;
      }
      if (n >= 0) return n;
    }
    return isRequest ? 0 : 'close';
  }

  private badHead(d: Direction, reason: string, data: Buffer, q: number): void {
    this.garbage(d, reason);
    this.resetMessage(d);
    this.resyncAt(d, data, q);
  }

  // ---- bodies ------------------------------------------------------------

  private feedLength(d: Direction, data: Buffer, p: number, ts: number): number {
    const n = Math.min(data.length - p, d.remaining);
    this.capture(d, data, p, n);
    d.bodyBytes += n;
    d.remaining -= n;
    d.lastNs = ts;
    if (d.remaining === 0) this.finish(d);
    return p + n;
  }

  private feedClose(d: Direction, data: Buffer, p: number, ts: number): number {
    const n = data.length - p;
    this.capture(d, data, p, n);
    d.bodyBytes += n;
    d.contentLength += n;
    d.lastNs = ts;
    return data.length;
  }

  private enterChunkSize(d: Direction): void {
    d.mode = Mode.ChunkSize;
    d.csState = 0;
    d.csDigits = 0;
    d.csSize = 0;
    d.csLineLen = 0;
  }

  private enterChunkEnd(d: Direction): void {
    d.mode = Mode.ChunkEnd;
    d.csState = 0;
  }

  private feedChunkSize(d: Direction, data: Buffer, p: number, ts: number): number {
    const end = data.length;
    const start = p;
    d.lastNs = ts;
    while (p < end) {
      const c = data[p] as number;
      if (d.csState === 0) {
        // size digits
        const v = hexVal(c);
        if (v >= 0) {
          if (++d.csDigits > MAX_CHUNK_DIGITS) return this.badChunk(d, data, p);
          d.csSize = d.csSize * 16 + v;
          p++;
          continue;
        }
        if (d.csDigits === 0) return this.badChunk(d, data, p);
        if (c === CR) {
          d.csState = 2;
          p++;
        } else if (c === LF) {
          p++;
          d.bodyBytes += p - start;
          this.chunkSizeDone(d);
          return p;
        } else if (c === SEMI || c === SP || c === TAB) {
          d.csState = 1;
          p++;
        } else {
          return this.badChunk(d, data, p);
        }
      } else if (d.csState === 1) {
        // extensions: skip to the end of the line
        const nl = data.indexOf(LF, p);
        if (nl < 0) {
          d.csLineLen += end - p;
          if (d.csLineLen > MAX_CHUNK_LINE) return this.badChunk(d, data, end);
          p = end;
          break;
        }
        d.csLineLen += nl - p;
        if (d.csLineLen > MAX_CHUNK_LINE) return this.badChunk(d, data, nl);
        p = nl + 1;
        d.bodyBytes += p - start;
        this.chunkSizeDone(d);
        return p;
      } else {
        // CR seen
        if (c !== LF) return this.badChunk(d, data, p);
        p++;
        d.bodyBytes += p - start;
        this.chunkSizeDone(d);
        return p;
      }
    }
    d.bodyBytes += p - start;
    return p;
  }

  private chunkSizeDone(d: Direction): void {
    if (d.csSize === 0) {
      d.mode = Mode.Trailer;
      d.lineLen = 0;
      d.lineFirstCR = false;
      d.trailerBytes = 0;
    } else {
      d.mode = Mode.ChunkData;
      d.remaining = d.csSize;
      d.contentLength += d.csSize;
    }
  }

  private feedChunkData(d: Direction, data: Buffer, p: number, ts: number): number {
    const n = Math.min(data.length - p, d.remaining);
    this.capture(d, data, p, n);
    d.bodyBytes += n;
    d.remaining -= n;
    d.lastNs = ts;
    if (d.remaining === 0) this.enterChunkEnd(d);
    return p + n;
  }

  /** The CRLF (or bare LF) after chunk data. */
  private feedChunkEnd(d: Direction, data: Buffer, p: number, ts: number): number {
    const c = data[p] as number;
    d.lastNs = ts;
    if (c === CR && d.csState === 0) {
      d.csState = 1;
      d.bodyBytes++;
      return p + 1;
    }
    if (c === LF) {
      d.bodyBytes++;
      this.enterChunkSize(d);
      return p + 1;
    }
    return this.badChunk(d, data, p);
  }

  /** Trailer fields after the last chunk, up to an empty line (not kept). */
  private feedTrailer(d: Direction, data: Buffer, p: number, ts: number): number {
    const end = data.length;
    d.lastNs = ts;
    let q = p;
    for (;;) {
      const nl = data.indexOf(LF, q);
      if (nl < 0) {
        if (end > q) {
          if (d.lineLen === 0) d.lineFirstCR = data[q] === CR;
          d.lineLen += end - q;
        }
        d.trailerBytes += end - p;
        d.bodyBytes += end - p;
        if (d.trailerBytes > this.maxHeaderBytes) return this.badChunk(d, data, end);
        return end;
      }
      const seg = nl - q;
      const firstCR = d.lineLen === 0 ? seg > 0 && data[q] === CR : d.lineFirstCR;
      const lineLen = d.lineLen + seg;
      q = nl + 1;
      d.lineLen = 0;
      if (lineLen === 0 || (lineLen === 1 && firstCR)) {
        d.bodyBytes += q - p;
        this.finish(d);
        return q;
      }
      if (d.trailerBytes + (q - p) > this.maxHeaderBytes) {
        d.bodyBytes += q - p;
        return this.badChunk(d, data, q);
      }
    }
  }

  private badChunk(d: Direction, data: Buffer, at: number): number {
    this.report('invalid chunked encoding', false);
    d.garbageReported = true;
    this.resetMessage(d);
    this.resyncAt(d, data, at);
    return at;
  }

  /** Keeps up to maxBodyBytes of body (stops at the first gap: the kept body is a true prefix). */
  private bodyLimit(m: HttpMessage): number {
    return this.bodyLimitOf ? Math.max(0, Math.floor(this.bodyLimitOf(m))) : this.maxBodyBytes;
  }

  private capture(d: Direction, data: Buffer, p: number, n: number): void {
    if (d.captureStopped || n <= 0) return;
    const room = d.bodyLimit - d.bodyKept;
    if (room <= 0) return;
    const take = Math.min(room, n);
    const need = d.bodyKept + take;
    if (d.bodyBuf === null || d.bodyBuf.length < need) {
      // exact for a known length; otherwise grow by doubling up to the limit
      const want = d.mode === Mode.Length ? Math.min(d.bodyLimit, d.bodyKept + d.remaining) : Math.min(d.bodyLimit, Math.max(4096, need * 2));
      const grown = Buffer.alloc(Math.max(want, need));
      if (d.bodyBuf !== null) d.bodyBuf.copy(grown, 0, 0, d.bodyKept);
      d.bodyBuf = grown;
    }
    data.copy(d.bodyBuf, d.bodyKept, p, p + take);
    d.bodyKept += take;
  }

  private gapBody(d: Direction, n: number, ts: number, lost: boolean): void {
    d.gapBytes += n;
    d.bodyBytes += n;
    d.captureStopped = true;
    d.lastNs = ts;
    if (lost && !d.gapNoted) {
      d.gapNoted = true;
      d.msg?.notes.push(d.isClient ? 'Packet loss while capturing the request' : 'Packet loss while capturing the response');
    }
  }

  // ---- message completion / resync ----------------------------------------

  private finish(d: Direction): void {
    const m = d.msg;
    if (m !== null) {
      m.endNs = d.lastNs;
      m.bodyBytes = d.bodyBytes;
      m.contentLength = d.contentLength;
      m.gapBytes = d.gapBytes;
      m.body = d.bodyBuf === null ? EMPTY : d.bodyBuf.subarray(0, d.bodyKept);
    }
    this.resetMessage(d);
    if (m !== null) this.emit(m);
  }

  /** Forgets the message in progress; the direction goes idle. */
  private resetMessage(d: Direction): void {
    d.msg = null;
    d.mode = Mode.Head;
    d.msgStarted = false;
    d.hlen = 0;
    if (d.hbuf !== null && d.hbuf.length > KEEP_HBUF_BYTES) d.hbuf = null;
    d.slDone = false;
    d.remaining = 0;
    d.bodyBytes = 0;
    d.contentLength = 0;
    d.gapBytes = 0;
    d.gapNoted = false;
    d.bodyBuf = null;
    d.bodyKept = 0;
    d.captureStopped = false;
  }

  /** Resync after lost bytes: silent, and the next byte may start a message. */
  private quietResync(d: Direction): void {
    this.resetMessage(d);
    d.mode = Mode.Resync;
    d.atLineStart = true;
    d.garbageReported = true;
  }

  /** Resync from data[at]: a candidate only if it follows a '\n'. */
  private resyncAt(d: Direction, data: Buffer, at: number): void {
    this.resetMessage(d);
    d.mode = Mode.Resync;
    d.atLineStart = at > 0 && data[at - 1] === LF;
  }

  private garbage(d: Direction, reason: string): void {
    if (!d.garbageReported) {
      d.garbageReported = true;
      this.report(reason, false);
    }
  }

  /** Skips to the next line that begins like a start line. */
  private feedResync(d: Direction, data: Buffer, p: number): number {
    const end = data.length;
    let c = d.atLineStart ? p : -1;
    for (;;) {
      if (c < 0) {
        const nl = data.indexOf(LF, p);
        if (nl < 0) {
          d.atLineStart = false;
          return end;
        }
        c = nl + 1;
        if (c === end) {
          d.atLineStart = true;
          return end;
        }
      }
      const b = data[c] as number;
      if (d.isClient ? isMethodChar(b) : b === 0x48 /* H */) {
        d.mode = Mode.Head;
        d.msgStarted = false;
        d.atLineStart = false;
        return c;
      }
      p = c;
      c = -1;
    }
  }

  // ---- reporting -----------------------------------------------------------

  private emit(m: HttpMessage): void {
    try {
      this.sink.onMessage(m);
    } catch (err) {
      this.report(`sink error: ${err instanceof Error ? err.message : String(err)}`, false);
    }
  }

  private report(reason: string, fatal: boolean): void {
    try {
      this.sink.onError(reason, fatal);
    } catch {
      // a failing sink must not break parsing
    }
  }

  /** Stops parsing the connection; with a reason, reports it as fatal. */
  private stop(reason: string | null): void {
    this.dead = true;
    this.client.mode = Mode.Ended;
    this.server.mode = Mode.Ended;
    this.client.hbuf = this.server.hbuf = null;
    this.client.hlen = this.server.hlen = 0;
    this.client.bodyBuf = this.server.bodyBuf = null;
    this.client.bodyKept = this.server.bodyKept = 0;
    if (reason !== null) this.report(reason, true);
  }

  private internalError(err: unknown): void {
    this.stop(`internal parser error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** An HTTP/1.x parser for one connection; see the module comment. */
export function createHttpParser(sink: ParserSink<HttpMessage>, options: HttpParserOptions = {}): ProtocolParser {
  return new HttpParser(sink, options);
}
