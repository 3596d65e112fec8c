/**
 * Incremental RESP2/RESP3 reader for one direction of one connection.
 *
 * A message is one top-level value (a client request is an array of bulk
 * strings or an inline command line; a server reply is any RESP value,
 * possibly preceded by RESP3 attributes, which belong to the reply's bytes but
 * are not values). Nested aggregates are tracked with an explicit stack (no
 * recursion) bounded at MAX_DEPTH levels.
 *
 * Input may be split at any byte; results do not depend on the split. Lines
 * are found with indexOf('\n') and only their first bytes are kept (lengths,
 * short texts); bulk payloads are only counted, except the first bytes the
 * document needs, which are copied into a small per-direction buffer. So the
 * memory per direction is a few KiB, whatever the message sizes.
 *
 * Gaps: a gap inside a bulk payload (or its CRLF) keeps sync through the
 * bulk's length. A gap elsewhere inside a message leaves the message's
 * structure unknown: the message stays open ("lost" mode) and the bytes that
 * follow are counted into it without being parsed, until the session calls
 * endLost() (the other side started a new exchange, or the connection went
 * idle); then it is emitted as truncated and parsing resumes, on probation.
 * A gap between messages hides whole messages: `desync` tells the session.
 *
 * Garbage: the client direction resynchronises at a line starting with '*'
 * ("*<n>\r\n$" is distinctive); the server direction, where any line may look
 * like a reply, waits in lost mode instead. A client stream that never produced
 * a message is given up after GIVE_UP_BYTES of garbage.
 */

import { REDIS_COMMANDS } from './commands';

const CR = 0x0d;
const LF = 0x0a;

export const T_SIMPLE = 0x2b; // +
export const T_ERROR = 0x2d; // -
export const T_INTEGER = 0x3a; // :
export const T_BULK = 0x24; // $
export const T_ARRAY = 0x2a; // *
export const T_NULL = 0x5f; // _
export const T_BOOLEAN = 0x23; // #
export const T_DOUBLE = 0x2c; // ,
export const T_BIGNUM = 0x28; // (
export const T_BULK_ERROR = 0x21; // !
export const T_VERBATIM = 0x3d; // =
export const T_MAP = 0x25; // %
export const T_SET = 0x7e; // ~
export const T_ATTRIBUTE = 0x7c; // |
export const T_PUSH = 0x3e; // >
/** Not a RESP type: a client's inline command line. */
export const T_INLINE = 0;

/** Deepest aggregate nesting accepted. */
export const MAX_DEPTH = 64;
/** Redis refuses inline commands longer than this (PROTO_INLINE_MAX_SIZE). */
const MAX_INLINE = 64 * 1024;
/** Longest length/count/number header line. */
const MAX_HEADER_LINE = 32;
/** Longest double / big number line. */
const MAX_NUMBER_LINE = 4096;
/** Longest simple string / error line (MONITOR lines carry whole commands). */
const MAX_TEXT_LINE = 512 * 1024 * 1024;
/** Largest bulk string accepted (Redis' proto-max-bulk-len can be raised, default 512 MiB). */
const MAX_BULK = 2 ** 32;
/** Same while resynchronising: a guessed message start must look sane (Redis' default limit). */
const MAX_BULK_PROBATION = 512 * 1024 * 1024;
/** Largest aggregate count (Redis: INT_MAX). */
const MAX_COUNT = 2 ** 31 - 1;
/**
 * Garbage after which a stream that never parsed is given up (not Redis, e.g.
 * TLS). Large, so that a connection picked up in the middle of a big value is
 * not abandoned.
 */
const GIVE_UP_BYTES = 1024 * 1024;
/** Bytes of each of the first top-level elements kept (command, subcommand, key; pub/sub kind, channel, count). */
const HEAD_ITEM_BYTES = 256;
const HEAD_ITEMS = 3;

/** One parsed message (request or reply). */
export interface RespMessage {
  /** Kernel timestamp (ns) of the feed carrying the first byte. */
  startNs: number;
  /** Kernel timestamp (ns) of the feed carrying the last byte. */
  endNs: number;
  /** Offset of the first byte in this direction's stream. */
  streamOffset: number;
  /** Bytes on the wire (attributes before a reply included). */
  bytes: number;
  /** Type byte of the top-level value (T_*), T_INLINE for an inline command. */
  type: number;
  /** The top-level value is an error ('-' or '!'). */
  isError: boolean;
  /**
   * Server: a short rendering of the value ("OK", "[a, b]", "{k: v}", "nil"),
   * at most maxText characters plus "..." when cut. Client: "".
   */
  text: string;
  /**
   * Texts of the top-level aggregate's direct elements (null: a nil element,
   * undefined: a nested aggregate), as many as were kept: for a request, its
   * words. Cut texts end in "...".
   */
  items: Array<string | null | undefined>;
  /** Type byte of each kept item. */
  itemTypes: number[];
  /** Elements of the top-level aggregate (a map counts keys and values), or the words of an inline command. */
  count: number;
  /** Some of the message was cut (text budget, or not captured). */
  truncated: boolean;
  /** Bytes of the message the agent never saw. */
  gapBytes: number;
  /** e.g. "Packet loss while capturing the request" */
  notes: string[];
}

export interface RespReaderSink {
  message(m: RespMessage): void;
  error(reason: string, fatal: boolean): void;
  /** A gap or garbage broke framing at tsNs: whole messages may have been lost. */
  desync(tsNs: number, lost: boolean): void;
  /** A new message starts (its first byte was fed at tsNs). */
  begin(tsNs: number): void;
}

export interface RespReaderOptions {
  /** Characters of rendering (server) / of command words (client) kept per message. */
  maxText: number;
}

const enum Mode {
  /** Expecting a value's type byte (or, between messages, a message). */
  Type,
  /** Reading the rest of a line (a value's header, or an inline command). */
  Line,
  /** Bulk payload. */
  Bulk,
  /** The CRLF after a bulk payload. */
  BulkEnd,
  /** After a gap that broke framing: bytes are counted (into the open message, if any), not parsed. */
  Lost,
  /** Skipping to a line that starts like a message. */
  Resync,
  /** The direction ended or was given up. */
  Ended,
}

function isTypeByte(c: number): boolean {
  switch (c) {
    case T_SIMPLE:
    case T_ERROR:
    case T_INTEGER:
    case T_BULK:
    case T_ARRAY:
    case T_NULL:
    case T_BOOLEAN:
    case T_DOUBLE:
    case T_BIGNUM:
    case T_BULK_ERROR:
    case T_VERBATIM:
    case T_MAP:
    case T_SET:
    case T_ATTRIBUTE:
    case T_PUSH:
      return true;
    default:
      return false;
  }
}

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** "-1" or decimal digits (at most 15) in buf[off, off + n); NaN otherwise. */
function parseLength(buf: Buffer, off: number, n: number): number {
  if (n === 2 && buf[off] === 0x2d && buf[off + 1] === 0x31) return -1;
  if (n === 0 || n > 15) return NaN;
  let v = 0;
  for (let i = off; i < off + n; i++) {
    const c = buf[i] as number;
    if (!isDigit(c)) return NaN;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

/** [+-]digits in buf[off, off + n). */
function isInteger(buf: Buffer, off: number, n: number): boolean {
  let i = off;
  const end = off + n;
  if (n > 0 && (buf[off] === 0x2d || buf[off] === 0x2b)) i++;
  if (i === end) return false;
  for (; i < end; i++) if (!isDigit(buf[i] as number)) return false;
  return true;
}

/** A RESP3 double in buf[off, off + n): digits, '.', 'e', signs, or inf / -inf / nan. */
function isDouble(buf: Buffer, off: number, n: number): boolean {
  if (n === 0) return false;
  for (let i = off; i < off + n; i++) {
    const c = buf[i] as number;
    if (!(isDigit(c) || c === 0x2e || c === 0x2d || c === 0x2b || c === 0x65 || c === 0x45 || c === 0x69 || c === 0x6e || c === 0x66 || c === 0x61)) {
      return false;
    }
  }
  return true;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;
}

/** Buffer.copy, without its call overhead for the short copies that are the norm here. */
function copyBytes(src: Buffer, srcStart: number, dst: Buffer, dstStart: number, n: number): void {
  if (n > 32) {
    src.copy(dst, dstStart, srcStart, srcStart + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[dstStart + i] = src[srcStart + i] as number;
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Splits an inline command line into words as Redis does (sdssplitargs):
 * whitespace separates words, "double quotes" take \n \r \t \b \a \xHH and
 * \<char> escapes, 'single quotes' take \'. Null when quotes are unbalanced.
 */
export function splitInline(buf: Buffer, len: number): string[] | null {
  let n = len;
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < n && isSpace(buf[i] as number)) i++;
    if (i >= n || buf[i] === 0) return out;
    const bytes: number[] = [];
    let inDq = false;
    let inSq = false;
    for (;;) {
      if (i >= n) {
        if (inDq || inSq) return null;
        break;
      }
      const c = buf[i] as number;
      if ((inDq || inSq) && c === 0) return null;
      if (inDq) {
        if (c === 0x5c && i + 3 < n && buf[i + 1] === 0x78 && hexVal(buf[i + 2] as number) >= 0 && hexVal(buf[i + 3] as number) >= 0) {
          bytes.push(hexVal(buf[i + 2] as number) * 16 + hexVal(buf[i + 3] as number));
          i += 4;
          continue;
        }
        if (c === 0x5c && i + 1 < n) {
          const e = buf[i + 1] as number;
          bytes.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
          i += 2;
          continue;
        }
        if (c === 0x22) {
          // a closing quote must be followed by a space or the end
          if (i + 1 < n && !isSpace(buf[i + 1] as number)) return null;
          i++;
          break;
        }
        bytes.push(c);
        i++;
      } else if (inSq) {
        if (c === 0x5c && i + 1 < n && buf[i + 1] === 0x27) {
          bytes.push(0x27);
          i += 2;
          continue;
        }
        if (c === 0x27) {
          if (i + 1 < n && !isSpace(buf[i + 1] as number)) return null;
          i++;
          break;
        }
        bytes.push(c);
        i++;
      } else {
        if (c === 0) {
          n = i; // a NUL ends the line for Redis (C string)
          break;
        }
        if (isSpace(c)) break;
        if (c === 0x22) inDq = true;
        else if (c === 0x27) inSq = true;
        else bytes.push(c);
        i++;
      }
    }
    out.push(Buffer.from(bytes).toString('utf8'));
  }
}

export class RespReader {
  private mode = Mode.Type;
  /** Bytes of this direction fed or skipped so far. */
  private streamPos = 0;
  /** Stream offset of data[0] in the current feed. */
  private base = 0;
  /** Stream offset just past the last byte consumed by the current message. */
  private pos = 0;

  private readonly maxText: number;
  private readonly lineBuf: Buffer;
  private readonly bulkBuf: Buffer;

  // message in progress
  private inMsg = false;
  private startNs = 0;
  private lastNs = 0;
  private msgOffset = 0;
  private topType = 0;
  private isError = false;
  private text = '';
  private budget = 0;
  private items: Array<string | null | undefined> = [];
  private itemTypes: number[] = [];
  private itemBudget = 0;
  private collecting = false;
  private topCount = 0;
  private truncated = false;
  private gapBytes = 0;
  private notes: string[] = [];
  private lossNoted = false;

  // aggregate stack
  private readonly kinds: number[] = new Array<number>(MAX_DEPTH).fill(0);
  private readonly left: number[] = new Array<number>(MAX_DEPTH).fill(0);
  private readonly idx: number[] = new Array<number>(MAX_DEPTH).fill(0);
  private depth = 0;
  private attrDepth = 0;

  // line
  private lineType = 0;
  private lineKept = 0;
  private lineLen = 0;
  private lineMax = 0;
  private lineKeep = 0;
  private lineLastCR = false;

  // bulk
  private bulkType = 0;
  private bulkLen = 0;
  private bulkLeft = 0;
  private bulkWant = 0;
  private bulkKept = 0;
  private bulkEnd = 0;
  private bulkCut = false;

  // resync / garbage
  private atLineStart = false;
  /**
   * The next message start is a guess (stream picked up in the middle, or after
   * a resync): errors are not reported, inline commands must be known ones.
   */
  private probation = true;
  private garbageReported = false;
  private garbageBytes = 0;
  private goodMessages = 0;
  /** Lost mode holds an open message. */
  private lostMsg = false;

  constructor(
    private readonly isClient: boolean,
    private readonly sink: RespReaderSink,
    options: RespReaderOptions,
  ) {
    this.maxText = Math.max(16, Math.floor(options.maxText));
    this.lineBuf = Buffer.alloc(Math.max(this.maxText, MAX_HEADER_LINE) + 2);
    this.bulkBuf = Buffer.alloc(Math.max(this.maxText, HEAD_ITEM_BYTES) + 4);
  }

  /** Bytes held right now (kept text and buffers in use). */
  bufferedBytes(): number {
    let n = this.lineKept + this.bulkKept + this.text.length;
    for (const it of this.items) if (it) n += it.length;
    return n;
  }

  /** Counting bytes after a gap that broke framing (see endLost). */
  get lost(): boolean {
    return this.mode === Mode.Lost;
  }

  /** Lost mode holds an open message (whose end was not seen). */
  get lostMessage(): boolean {
    return this.mode === Mode.Lost && this.lostMsg;
  }

  /** A message is in progress (or held open in lost mode). */
  get inMessage(): boolean {
    return this.inMsg;
  }

  /** Timestamp of the last byte of the message in progress. */
  get lastByteNs(): number {
    return this.lastNs;
  }

  feed(data: Buffer, ts: number): void {
    if (this.mode === Mode.Ended) return;
    if (this.mode === Mode.Lost) {
      this.streamPos += data.length;
      this.lastNs = ts;
      return;
    }
    const end = data.length;
    this.base = this.streamPos;
    this.streamPos += end;
    let p = 0;
    while (p < end) {
      switch (this.mode) {
        case Mode.Type:
          p = this.onType(data, p, ts);
          break;
        case Mode.Line:
          p = this.onLine(data, p, ts);
          break;
        case Mode.Bulk:
          p = this.onBulk(data, p, ts);
          break;
        case Mode.BulkEnd:
          p = this.onBulkEnd(data, p, ts);
          break;
        case Mode.Resync:
          p = this.onResync(data, p);
          break;
        default: // Ended, or Lost (entered by a protocol error on the server side)
          return;
      }
    }
  }

  gap(length: number, ts: number, lost: boolean): void {
    if (this.mode === Mode.Ended || !(length > 0)) return;
    this.streamPos += length;
    if (this.mode === Mode.Lost) {
      this.lastNs = ts;
      if (this.lostMsg) {
        this.gapBytes += length;
        this.noteLoss(lost);
      }
      return;
    }
    let rest = length;
    if (this.mode === Mode.Bulk) {
      const n = Math.min(rest, this.bulkLeft);
      this.bulkLeft -= n;
      rest -= n;
      this.gapBytes += n;
      this.bulkCut = true;
      this.lastNs = ts;
      this.noteLoss(lost);
      if (this.bulkLeft === 0) this.mode = Mode.BulkEnd;
    }
    if (this.mode === Mode.BulkEnd && rest > 0) {
      const n = Math.min(rest, 2 - this.bulkEnd);
      this.bulkEnd += n;
      rest -= n;
      this.gapBytes += n;
      this.lastNs = ts;
      if (this.bulkEnd === 2) {
        this.pos = this.streamPos - rest;
        this.bulkDone();
      }
    }
    if (rest === 0) return;
    this.pos = this.streamPos;
    const mid = this.inMsg && (this.mode === Mode.Type || this.mode === Mode.Line || this.mode === Mode.Bulk || this.mode === Mode.BulkEnd);
    if (mid) {
      // where the message ends is unknown now
      this.truncated = true;
      this.gapBytes += rest;
      this.lastNs = ts;
      this.noteLoss(lost);
      this.mode = Mode.Lost;
      this.lostMsg = true;
      return;
    }
    // between messages (or resynchronising): whole messages were not seen
    this.resetMessage();
    this.sink.desync(ts, lost);
    if (this.isClient) this.enterResync(true);
    else this.enterLost();
  }

  end(_ts: number): void {
    if (this.mode === Mode.Lost) this.endLost();
    this.resetMessage(); // a truncated message is dropped
    this.mode = Mode.Ended;
  }

  /**
   * Leaves lost mode: the open message (if any) is complete with what was
   * counted so far, and the next byte is taken as a message start (on probation).
   */
  endLost(): void {
    if (this.mode !== Mode.Lost) return;
    this.mode = Mode.Type;
    this.probation = true;
    if (this.lostMsg) {
      this.lostMsg = false;
      this.pos = this.streamPos;
      this.truncated = true;
      this.finishMessage();
      this.probation = true;
    }
  }

  /** Stops parsing this direction for good. */
  stop(): void {
    this.resetMessage();
    this.mode = Mode.Ended;
  }

  // ---- values -------------------------------------------------------------

  private onType(data: Buffer, p: number, ts: number): number {
    const c = data[p] as number;
    if (!this.inMsg) {
      // blank lines between messages are ignored (Redis does too)
      if (c === CR || c === LF) return p + 1;
      this.beginMessage(ts, this.base + p);
      if (this.isClient && c !== T_ARRAY) {
        // an inline command (leading blanks are allowed, as by Redis)
        if (!isLetter(c) && c !== 0x20 && c !== 0x09) return this.protocolError('invalid inline command', data, p, ts);
        this.topType = T_INLINE;
        this.startLine(T_INLINE);
        return p; // the byte is part of the line
      }
    }
    if (this.isClient) {
      if (this.depth > 0 && c !== T_BULK) return this.protocolError(`expected '$', got '${String.fromCharCode(c)}'`, data, p, ts);
    } else if (!isTypeByte(c)) {
      return this.protocolError('unknown RESP type', data, p, ts);
    }
    if (this.depth === 0 && c !== T_ATTRIBUTE) this.topType = c;
    if (c !== T_ATTRIBUTE && this.depth > 0 && this.renderOn()) {
      const t = this.depth - 1;
      const i = this.idx[t] as number;
      if (i > 0) this.append(this.kinds[t] === T_MAP && i % 2 === 1 ? ': ' : ', ');
    }
    this.startLine(c);
    return p + 1;
  }

  private startLine(type: number): void {
    this.mode = Mode.Line;
    this.lineType = type;
    this.lineKept = 0;
    this.lineLen = 0;
    this.lineLastCR = false;
    switch (type) {
      case T_INLINE:
        this.lineMax = MAX_INLINE;
        this.lineKeep = this.maxText;
        break;
      case T_SIMPLE:
      case T_ERROR:
        this.lineMax = MAX_TEXT_LINE;
        this.lineKeep = this.maxText;
        break;
      case T_DOUBLE:
      case T_BIGNUM:
        this.lineMax = MAX_NUMBER_LINE;
        this.lineKeep = this.maxText;
        break;
      default:
        this.lineMax = MAX_HEADER_LINE;
        this.lineKeep = MAX_HEADER_LINE;
    }
  }

  private onLine(data: Buffer, p: number, ts: number): number {
    const end = data.length;
    const nl = data.indexOf(LF, p);
    this.lastNs = ts;
    if (nl >= 0 && this.lineLen === 0) {
      // the whole line is in this chunk: parse it in place
      const hasCR = nl > p && data[nl - 1] === CR;
      const contentLen = hasCR ? nl - p - 1 : nl - p;
      return this.lineComplete(data, p, contentLen, Math.min(contentLen, this.lineKeep), hasCR, data, nl, ts);
    }
    const stop = nl < 0 ? end : nl;
    const n = stop - p;
    if (n > 0) {
      const room = this.lineKeep + 1 - this.lineKept; // +1: room for the CR
      if (room > 0) {
        const take = Math.min(room, n);
        copyBytes(data, p, this.lineBuf, this.lineKept, take);
        this.lineKept += take;
      }
      this.lineLen += n;
      this.lineLastCR = data[stop - 1] === CR;
    }
    if (this.lineLen > this.lineMax + 1) {
      return this.protocolError(this.lineType === T_INLINE ? 'inline command too long' : 'RESP line too long', data, stop, ts);
    }
    if (nl < 0) return end;
    const contentLen = this.lineLastCR ? this.lineLen - 1 : this.lineLen;
    return this.lineComplete(this.lineBuf, 0, contentLen, Math.min(this.lineKept, contentLen), this.lineLastCR, data, nl, ts);
  }

  /** The line's content is buf[off, off + kept) of contentLen bytes; its LF is data[nl]. */
  private lineComplete(buf: Buffer, off: number, contentLen: number, kept: number, hasCR: boolean, data: Buffer, nl: number, ts: number): number {
    this.pos = this.base + nl + 1;
    this.lineKept = 0;
    this.lineLen = 0;
    if (this.lineType !== T_INLINE && !hasCR) return this.protocolError('RESP line without CR', data, nl + 1, ts);
    if (contentLen > this.lineMax) {
      return this.protocolError(this.lineType === T_INLINE ? 'inline command too long' : 'RESP line too long', data, nl + 1, ts);
    }
    const err = this.lineDone(buf, off, contentLen, kept);
    if (err !== null) return this.protocolError(err, data, nl + 1, ts);
    return nl + 1;
  }

  /** A complete line, its content in buf[off, off + kept) of contentLen bytes; returns an error reason, or null. */
  private lineDone(buf: Buffer, off: number, contentLen: number, kept: number): string | null {
    const type = this.lineType;
    switch (type) {
      case T_INLINE:
        return this.inlineDone(buf, off, contentLen, kept);
      case T_SIMPLE:
      case T_ERROR:
        this.scalar(type, buf, off, off + kept, kept < contentLen);
        return null;
      case T_INTEGER:
        if (!isInteger(buf, off, contentLen)) return 'invalid RESP integer';
        this.scalar(type, buf, off, off + contentLen, false);
        return null;
      case T_BIGNUM:
        if (kept === contentLen && !isInteger(buf, off, contentLen)) return 'invalid RESP big number';
        this.scalar(type, buf, off, off + kept, kept < contentLen);
        return null;
      case T_DOUBLE:
        if (kept === contentLen && !isDouble(buf, off, contentLen)) return 'invalid RESP double';
        this.scalar(type, buf, off, off + kept, kept < contentLen);
        return null;
      case T_NULL:
        if (contentLen !== 0) return 'invalid RESP null';
        this.scalar(type, null, 0, 0, false);
        return null;
      case T_BOOLEAN: {
        const c = buf[off];
        if (contentLen !== 1 || (c !== 0x74 && c !== 0x66)) return 'invalid RESP boolean';
        this.scalar(type, null, 0, 0, false, c === 0x74 ? 'true' : 'false');
        return null;
      }
      case T_BULK:
      case T_BULK_ERROR:
      case T_VERBATIM: {
        const n = parseLength(buf, off, contentLen);
        if (n === -1 && type === T_BULK) {
          this.scalar(type, null, 0, 0, false);
          return null;
        }
        if (!(n >= 0) || n > (this.probation ? MAX_BULK_PROBATION : MAX_BULK)) return 'invalid bulk length';
        if (type === T_VERBATIM && n < 4) return 'invalid verbatim string';
        this.startBulk(type, n);
        return null;
      }
      default: {
        // aggregates
        const n = parseLength(buf, off, contentLen);
        if (n === -1 && type === T_ARRAY) {
          if (this.isClient) return this.discardMessage();
          this.scalar(type, null, 0, 0, false);
          return null;
        }
        if (!(n >= 0) || n > MAX_COUNT) return 'invalid aggregate length';
        if (n === 0) {
          if (this.isClient) return this.discardMessage(); // "*0": Redis ignores it
          this.emptyAggregate(type);
          return null;
        }
        if (this.depth >= MAX_DEPTH) return 'RESP nesting too deep';
        this.pushFrame(type, type === T_MAP || type === T_ATTRIBUTE ? 2 * n : n);
        return null;
      }
    }
  }

  /** An inline command line ("SET a b"): its words are the request's items. */
  private inlineDone(buf: Buffer, off: number, contentLen: number, kept: number): string | null {
    const cut = kept < contentLen;
    const line = off === 0 ? buf : buf.subarray(off, off + kept);
    let words = splitInline(line, kept);
    if (words === null) {
      // unbalanced quotes (Redis answers with an error) or a line cut inside quotes
      words = line.toString('utf8', 0, kept).split(/[ \t\r\n\v\f]+/).filter((w) => w.length > 0);
    }
    if (words.length === 0) return this.discardMessage(); // Redis ignores blank lines
    // the tail of a value looks like a line of words: at a guessed start, only a known command will do
    if (this.probation && !REDIS_COMMANDS.has((words[0] as string).toUpperCase())) return 'not a Redis command';
    let budget = this.maxText;
    for (let i = 0; i < words.length; i++) {
      let w = words[i] as string;
      const cap = Math.max(budget, i < HEAD_ITEMS ? HEAD_ITEM_BYTES : 0);
      if (cap <= 0) {
        this.truncated = true;
        break;
      }
      if (w.length > cap) {
        w = `${w.slice(0, cap)}...`;
        this.truncated = true;
      }
      budget -= w.length;
      this.items.push(w);
      this.itemTypes.push(T_BULK);
    }
    if (cut) {
      this.truncated = true;
      const last = this.items.length - 1;
      const w = this.items[last] as string;
      if (!w.endsWith('...')) this.items[last] = `${w}...`;
    }
    this.topCount = words.length;
    this.finishMessage();
    return null;
  }

  /** A client message that asks for nothing ("*0", blank inline line): Redis sends no reply. */
  private discardMessage(): null {
    this.resetMessage();
    this.mode = Mode.Type;
    return null;
  }

  private renderOn(): boolean {
    return !this.isClient && this.attrDepth === 0;
  }

  /** Whether the value starting now at the current depth is a kept top-level item, and how many bytes of it to keep. */
  private itemCap(): number {
    if (this.depth !== 1 || !this.collecting) return 0;
    const head = this.items.length < HEAD_ITEMS ? HEAD_ITEM_BYTES : 0;
    return this.isClient ? Math.max(this.itemBudget, head) : head;
  }

  private append(s: string): void {
    if (this.budget <= 0) {
      if (s.length > 0) this.truncated = true;
      return;
    }
    if (s.length > this.budget) {
      this.text += s.slice(0, this.budget);
      this.budget = 0;
      this.truncated = true;
    } else {
      this.text += s;
      this.budget -= s.length;
    }
  }

  /**
   * A complete scalar. Its text is `fixed`, or buf[start, end) (UTF-8, with
   * "..." when `cut`), decoded only if needed; nil when both are absent.
   */
  private scalar(type: number, buf: Buffer | null, start: number, end: number, cut: boolean, fixed?: string): void {
    const renderOn = this.renderOn();
    const render = renderOn && this.budget > 0;
    if (renderOn && !render) this.truncated = true; // no room left in the rendering
    const cap = this.itemCap();
    if (render || cap > 0) {
      let s: string | null = fixed !== undefined ? fixed : buf === null ? null : buf.toString('utf8', start, end);
      if (cut && s !== null) s += '...';
      if (render) this.append(s === null ? 'nil' : s);
      if (cap > 0) {
        if (s !== null && s.length > cap) s = `${s.slice(0, cap)}...`;
        this.items.push(s);
        this.itemTypes.push(type);
        if (s !== null) this.itemBudget -= s.length;
      }
    } else if (this.isClient && this.depth === 1 && this.collecting) {
      this.truncated = true; // a command word not kept
    }
    if (this.depth === 0 && (type === T_ERROR || type === T_BULK_ERROR)) this.isError = true;
    this.valueDone();
  }

  private startBulk(type: number, n: number): void {
    this.bulkType = type;
    this.bulkLen = n;
    this.bulkLeft = n;
    this.bulkKept = 0;
    this.bulkEnd = 0;
    this.bulkCut = false;
    let want = Math.max(this.renderOn() ? this.budget : 0, this.itemCap());
    if (type === T_VERBATIM) want += 4; // the "txt:" format prefix
    this.bulkWant = Math.min(n, want, this.bulkBuf.length);
    this.mode = n > 0 ? Mode.Bulk : Mode.BulkEnd;
  }

  private onBulk(data: Buffer, p: number, ts: number): number {
    const len = this.bulkLen;
    if (this.bulkLeft === len && !this.bulkCut && data.length - p >= len + 2 && data[p + len] === CR && data[p + len + 1] === LF) {
      // the whole payload and its CRLF are in this chunk: decode in place
      this.bulkLeft = 0;
      this.bulkEnd = 2;
      this.lastNs = ts;
      this.pos = this.base + p + len + 2;
      const from = this.bulkType === T_VERBATIM ? Math.min(4, this.bulkWant) : 0;
      this.scalar(this.bulkType === T_VERBATIM ? T_BULK : this.bulkType, data, p + from, p + this.bulkWant, this.bulkWant < len);
      return p + len + 2;
    }
    const n = Math.min(data.length - p, this.bulkLeft);
    if (!this.bulkCut && this.bulkKept < this.bulkWant) {
      const take = Math.min(n, this.bulkWant - this.bulkKept);
      copyBytes(data, p, this.bulkBuf, this.bulkKept, take);
      this.bulkKept += take;
    }
    this.bulkLeft -= n;
    this.lastNs = ts;
    if (this.bulkLeft === 0) this.mode = Mode.BulkEnd;
    return p + n;
  }

  private onBulkEnd(data: Buffer, p: number, ts: number): number {
    const end = data.length;
    while (p < end && this.bulkEnd < 2) {
      if (data[p] !== (this.bulkEnd === 0 ? CR : LF)) return this.protocolError('bulk string not followed by CRLF', data, p, ts);
      this.bulkEnd++;
      p++;
    }
    this.lastNs = ts;
    if (this.bulkEnd === 2) {
      this.pos = this.base + p;
      this.bulkDone();
    }
    return p;
  }

  private bulkDone(): void {
    const kept = this.bulkKept;
    const type = this.bulkType;
    const len = this.bulkLen;
    this.bulkKept = 0;
    const from = type === T_VERBATIM ? Math.min(4, kept) : 0;
    this.scalar(type === T_VERBATIM ? T_BULK : type, this.bulkBuf, from, kept, kept < len);
  }

  private pushFrame(type: number, n: number): void {
    if (type === T_ATTRIBUTE) this.attrDepth++;
    else if (this.renderOn()) this.append(type === T_MAP ? '{' : '[');
    const cap = this.itemCap();
    const d = this.depth;
    this.kinds[d] = type;
    this.left[d] = n;
    this.idx[d] = 0;
    this.depth = d + 1;
    if (d === 0 && type !== T_ATTRIBUTE) {
      this.collecting = true;
      this.topCount = n;
    } else if (d === 1 && cap > 0) {
      // a nested aggregate as a top-level element: no text of its own
      this.items.push(undefined);
      this.itemTypes.push(type);
    }
    this.mode = Mode.Type;
  }

  private emptyAggregate(type: number): void {
    if (type === T_ATTRIBUTE) {
      this.mode = Mode.Type; // an empty attribute: not a value
      return;
    }
    if (this.renderOn()) this.append(type === T_MAP ? '{}' : '[]');
    if (this.depth === 0) this.topCount = 0;
    else if (this.itemCap() > 0) {
      this.items.push(undefined);
      this.itemTypes.push(type);
    }
    this.valueDone();
  }

  /** A value ended at the current depth: advance (and close) the enclosing aggregates. */
  private valueDone(): void {
    for (;;) {
      if (this.depth === 0) {
        this.finishMessage();
        return;
      }
      const t = this.depth - 1;
      this.idx[t]++;
      if (--this.left[t] > 0) {
        this.mode = Mode.Type;
        return;
      }
      const k = this.kinds[t] as number;
      this.depth = t;
      if (k === T_ATTRIBUTE) {
        // attributes precede a value and are not one
        this.attrDepth--;
        this.mode = Mode.Type;
        return;
      }
      if (this.renderOn()) this.append(k === T_MAP ? '}' : ']');
    }
  }

  // ---- messages -------------------------------------------------------------

  private beginMessage(ts: number, offset: number): void {
    this.sink.begin(ts);
    this.inMsg = true;
    this.startNs = ts;
    this.lastNs = ts;
    this.msgOffset = offset;
    this.topType = 0;
    this.isError = false;
    this.text = '';
    this.budget = this.maxText;
    this.items = [];
    this.itemTypes = [];
    this.itemBudget = this.maxText;
    this.collecting = false;
    this.topCount = 0;
    this.truncated = false;
    this.gapBytes = 0;
    this.notes = [];
    this.lossNoted = false;
    this.depth = 0;
    this.attrDepth = 0;
  }

  private resetMessage(): void {
    this.inMsg = false;
    this.depth = 0;
    this.attrDepth = 0;
    this.text = '';
    this.items = [];
    this.itemTypes = [];
    this.notes = [];
    this.lineKept = 0;
    this.bulkKept = 0;
    if (this.mode !== Mode.Ended) this.mode = Mode.Type;
  }

  private finishMessage(): void {
    const m: RespMessage = {
      startNs: this.startNs,
      endNs: this.lastNs,
      streamOffset: this.msgOffset,
      bytes: this.pos - this.msgOffset,
      type: this.topType,
      isError: this.isError,
      text: this.truncated && !this.isClient ? `${this.text}...` : this.text,
      items: this.items,
      itemTypes: this.itemTypes,
      count: this.topCount,
      truncated: this.truncated,
      gapBytes: this.gapBytes,
      notes: this.notes,
    };
    this.resetMessage();
    this.goodMessages++;
    this.garbageReported = false;
    this.garbageBytes = 0;
    this.probation = false;
    this.sink.message(m);
  }

  private noteLoss(lost: boolean): void {
    if (lost && !this.lossNoted) {
      this.lossNoted = true;
      this.notes.push(this.isClient ? 'Packet loss while capturing the request' : 'Packet loss while capturing the response');
    }
  }

  // ---- garbage --------------------------------------------------------------

  private protocolError(reason: string, data: Buffer, at: number, ts: number): number {
    const hadMessage = this.inMsg;
    if (!this.garbageReported && !this.probation) this.sink.error(reason, false);
    this.garbageReported = true;
    this.resetMessage();
    if (hadMessage) this.sink.desync(ts, false);
    if (!this.isClient) {
      // the rest of this feed is counted, not parsed
      this.enterLost();
      return data.length;
    }
    this.mode = Mode.Resync;
    this.probation = true;
    this.atLineStart = at > 0 && data[at - 1] === LF;
    return at;
  }

  private enterLost(): void {
    this.resetMessage();
    this.mode = Mode.Lost;
    this.lostMsg = false;
  }

  private enterResync(atLineStart: boolean): void {
    this.resetMessage();
    this.mode = Mode.Resync;
    this.atLineStart = atLineStart;
    this.probation = true;
    this.garbageReported = true;
  }

  /** Skips to the next line that starts like a message. */
  private onResync(data: Buffer, p: number): number {
    const end = data.length;
    let c = this.atLineStart ? p : -1;
    for (;;) {
      if (c < 0) {
        const nl = data.indexOf(LF, p);
        if (nl < 0) {
          this.skipped(end - p);
          this.atLineStart = false;
          return end;
        }
        this.skipped(nl + 1 - p);
        if (this.mode === Mode.Ended) return end;
        c = nl + 1;
        if (c === end) {
          this.atLineStart = true;
          return end;
        }
      }
      const b = data[c] as number;
      if (this.isClient ? b === T_ARRAY : isTypeByte(b)) {
        this.mode = Mode.Type;
        this.atLineStart = false;
        return c;
      }
      p = c;
      c = -1;
    }
  }

  private skipped(n: number): void {
    this.garbageBytes += n;
    if (this.goodMessages === 0 && this.garbageBytes > GIVE_UP_BYTES) {
      this.mode = Mode.Ended;
      this.sink.error('not RESP: no message in the first bytes of the stream', true);
    }
  }
}
