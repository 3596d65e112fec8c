/**
 * Redis on one connection: a RESP reader per direction plus FIFO pairing.
 *
 * Redis answers commands in order, so replies pair with requests first-in
 * first-out (pipelining included; MULTI's commands each get their +QUEUED and
 * EXEC its array). What is not a reply is kept out of the pairing:
 * - RESP3 pushes ('>') and, on a RESP2 connection in subscribed mode,
 *   `message` / `pmessage` / `smessage` arrays: out-of-band deliveries, counted
 *   in the next transaction's `data.pushes`;
 * - subscribe/unsubscribe confirmations (arrays in RESP2, pushes in RESP3)
 *   answer the (P|S)(UN)SUBSCRIBE at the head of the queue: one per channel,
 *   all collected into that request's response (an UNSUBSCRIBE without
 *   channels takes confirmations until its kind of subscription count is 0);
 * - after MONITOR's +OK, the monitor lines ("+1700000000.123 [0 ...] ...").
 * Commands sent under CLIENT REPLY OFF / SKIP get no reply: they are reported
 * at once, without one, and never queued. PSYNC/SYNC turn the connection into
 * a replication stream: parsing stops.
 *
 * Guards against mispairing: a reply whose first byte came before the head
 * request's first byte cannot answer it (it is reported as an unmatched
 * response); when the server's stream loses framing (gap, garbage) the
 * requests sent before then are reported unmatched; replies owed to requests
 * evicted from a full queue are consumed without being paired.
 *
 * Blocking commands (BLPOP key 5, XREAD BLOCK 0, WAIT ...) are not expired
 * before their own timeout has passed on top of the transaction timeout.
 */
import type { MessageSpan, ProtocolSession, ProtocolTransaction, Sender, TransactionSink } from '../types';
import { blockingNs, CONFIRMATION_KINDS, CONTAINER_COMMANDS, isSubcommandWord, MESSAGE_KINDS, SUBSCRIBE_KINDS } from './commands';
import { RespReader, T_ARRAY, T_INLINE, T_INTEGER, T_PUSH, T_SIMPLE, type RespMessage } from './resp';

export interface RedisRequest {
  startNs: number;
  endNs: number;
  streamOffset: number;
  /** Bytes on the wire. */
  bytes: number;
  /** First word, upper-cased ("SET"). */
  command: string;
  /** Command, with the subcommand of container commands ("CONFIG GET"). */
  method: string;
  /** First argument after the method (usually the key). */
  resource?: string;
  /** The command line as sent, space-joined ("set key3 me"), bounded. */
  query: string;
  /** Words kept (command first); cut ones end in "...". */
  args: string[];
  /** Number of words in the request. */
  argc: number;
  /** Sent as an inline command (plain text line) rather than a RESP array. */
  inline: boolean;
  /** The server sends no reply to it (CLIENT REPLY OFF / SKIP in force). */
  noReply?: boolean;
  truncated: boolean;
  /** Bytes of the request never captured. */
  gapBytes: number;
  notes: string[];
}

export interface RedisResponse {
  startNs: number;
  endNs: number;
  streamOffset: number;
  /** Bytes on the wire (all confirmations of a multi-channel (UN)SUBSCRIBE). */
  bytes: number;
  /** RESP type of the (first) reply: "+", "-", ":", "$", "*", "%", "~", ">", "_", "#", ",", "(", "!", "=". */
  type: string;
  /** An error reply ('-' or RESP3 '!'). */
  isError: boolean;
  /** Short rendering of the reply ("OK", "[a, b]", "nil"), or the error text. */
  value: string;
  truncated: boolean;
  /** Replies making up the response (one per channel for (UN)SUBSCRIBE). */
  parts: number;
  gapBytes: number;
  notes: string[];
}

export interface RedisData {
  request?: RedisRequest;
  response?: RedisResponse;
  /** Out-of-band messages (pub/sub deliveries, RESP3 pushes, MONITOR lines) since the previous transaction. */
  pushes?: number;
  /** Replies consumed since the previous transaction because their requests had already been reported (queue full). */
  lateReplies?: number;
}

export interface RedisSessionOptions {
  /** Characters of query / return value kept. */
  maxTextLength?: number;
  /** Queued requests' size bound (Packetbeat's queue_max_bytes; here: their kept text). */
  queueMaxBytes?: number;
  /** Queued requests bound (Packetbeat's queue_max_messages). */
  queueMaxMessages?: number;
}

const MONITOR_LINE = /^\d+\.\d+ \[/;
/** Fixed cost charged per queued request on top of its text. */
const REQUEST_OVERHEAD = 64;

interface Pending {
  req: RedisRequest;
  /** Confirmation kind answering it (pub/sub commands). */
  kind: string | undefined;
  /** Confirmations expected (0: until the subscription count of its kind is 0). */
  expect: number;
  /** Confirmations received so far. */
  parts: RespMessage[] | null;
  /** It may block this long (ns) before answering. */
  blockNs: number;
  /** Accounted in queueBytes. */
  size: number;
}

function typeName(t: number): string {
  return t === T_INLINE ? 'inline' : String.fromCharCode(t);
}

function span(m: { startNs: number; endNs: number; bytes: number; streamOffset: number }): MessageSpan {
  return { startNs: m.startNs, endNs: m.endNs, bytes: m.bytes, streamOffset: m.streamOffset };
}

class RedisSession implements ProtocolSession {
  private readonly client: RespReader;
  private readonly server: RespReader;
  private readonly maxText: number;
  private readonly queueMaxBytes: number;
  private readonly queueMaxMessages: number;

  private queue: Pending[] = [];
  private qHead = 0;
  private queueBytes = 0;
  /** Replies still to come for requests already reported (evicted). */
  private owed = 0;
  private pushes = 0;
  private lateReplies = 0;
  /** Subscriptions, as the confirmations count them. */
  private nChannels = 0;
  private nPatterns = 0;
  private nShard = 0;
  private resp3 = false;
  private monitor = false;
  /** CLIENT REPLY mode: replies off, or off for the next command only. */
  private replies: 'on' | 'off' | 'skip' = 'on';
  private dead = false;

  constructor(
    private readonly sink: TransactionSink<RedisData>,
    options: RedisSessionOptions,
  ) {
    this.maxText = Math.max(16, Math.floor(options.maxTextLength ?? 1024));
    this.queueMaxBytes = Math.max(1, Math.floor(options.queueMaxBytes ?? 1024 * 1024));
    this.queueMaxMessages = Math.max(1, Math.floor(options.queueMaxMessages ?? 20000));
    const readerOptions = { maxText: this.maxText };
    this.client = new RespReader(
      true,
      {
        message: (m) => this.onRequest(m),
        error: (reason, fatal) => {
          this.reportError(reason, fatal);
          if (fatal) this.stop();
        },
        desync: () => {
          // lost requests: their replies are told apart by time where possible
        },
        begin: () => {
          // a request after a reply whose end was lost: that reply is over
          if (this.server.lost && this.queued() <= (this.server.lostMessage ? 1 : 0)) this.server.endLost();
        },
      },
      readerOptions,
    );
    this.server = new RespReader(
      false,
      {
        message: (m) => this.onReply(m),
        error: (reason, fatal) => {
          this.reportError(reason, fatal);
          if (fatal) this.stop();
        },
        desync: (ts, lost) => this.serverDesync(ts, lost),
        begin: () => {
          // a reply while nothing else is waiting: the request whose end was lost is over
          if (this.client.lost && this.queued() === 0) this.client.endLost();
        },
      },
      readerOptions,
    );
  }

  // ---- ProtocolSession ------------------------------------------------------

  feed(from: Sender, data: Buffer, tsNs: number): void {
    if (this.dead || data.length === 0) return;
    try {
      (from === 'client' ? this.client : this.server).feed(data, tsNs);
    } catch (err) {
      this.internalError(err);
    }
  }

  gap(from: Sender, length: number, tsNs: number, lost = true): void {
    if (this.dead) return;
    try {
      (from === 'client' ? this.client : this.server).gap(length, tsNs, lost);
    } catch (err) {
      this.internalError(err);
    }
  }

  end(from: Sender, tsNs: number): void {
    if (this.dead) return;
    try {
      (from === 'client' ? this.client : this.server).end(tsNs);
    } catch (err) {
      this.internalError(err);
    }
  }

  bufferedBytes(): number {
    return this.client.bufferedBytes() + this.server.bufferedBytes() + this.queueBytes;
  }

  pending(): number {
    // a request whose end was lost is waiting too (expire() completes it)
    return this.queued() + (this.client.lostMessage ? 1 : 0);
  }

  private queued(): number {
    return this.queue.length - this.qHead;
  }

  expire(beforeNs: number): void {
    try {
      // a message whose end was lost is over once its direction went quiet
      if (this.client.lost && (beforeNs === Infinity || this.client.lastByteNs < beforeNs)) this.client.endLost();
      if (this.server.lost && (beforeNs === Infinity || this.server.lastByteNs < beforeNs)) this.server.endLost();
      for (;;) {
        const head = this.peek();
        if (!head) break;
        if (beforeNs !== Infinity) {
          if (!(head.req.endNs + head.blockNs < beforeNs)) break;
          // a reply still coming in is not late
          if (this.server.inMessage && this.server.lastByteNs >= beforeNs) break;
        }
        this.shift();
        this.reportPending(head, []);
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  close(tsNs: number): void {
    try {
      this.client.endLost();
      this.server.endLost();
      if (!this.dead) {
        this.client.end(tsNs);
        this.server.end(tsNs);
      }
      for (let head = this.shift(); head; head = this.shift()) this.reportPending(head, []);
    } catch (err) {
      this.internalError(err);
    }
  }

  // ---- requests -------------------------------------------------------------

  private onRequest(m: RespMessage): void {
    if (this.dead) return;
    const args = m.items.map((w) => w ?? '');
    const command = (args[0] ?? '').toUpperCase();
    let method = command;
    let words = 1;
    const sub = args[1];
    if (sub !== undefined && CONTAINER_COMMANDS.has(command) && isSubcommandWord(sub)) {
      method = `${command} ${sub.toUpperCase()}`;
      words = 2;
    }
    let query = args.join(' ');
    if (args.length < m.count) query += ' ...';
    const req: RedisRequest = {
      startNs: m.startNs,
      endNs: m.endNs,
      streamOffset: m.streamOffset,
      bytes: m.bytes,
      command,
      method,
      resource: args[words],
      query,
      args,
      argc: m.count,
      inline: m.type === T_INLINE,
      truncated: m.truncated,
      gapBytes: m.gapBytes,
      notes: m.notes,
    };
    if (this.noReply(command, method, args)) {
      req.noReply = true;
      this.emit({ request: span(req), notes: [...req.notes], data: this.data(req, undefined) });
      return;
    }
    const kind = SUBSCRIBE_KINDS.get(command);
    const size = query.length + REQUEST_OVERHEAD;
    this.queue.push({
      req,
      kind,
      expect: kind ? Math.max(0, m.count - 1) : 0,
      parts: null,
      blockNs: blockingNs(command, args, m.count),
      size,
    });
    this.queueBytes += size;
    while (this.queued() > this.queueMaxMessages || (this.queueBytes > this.queueMaxBytes && this.queued() > 1)) {
      const old = this.shift()!;
      if (!old.parts) this.owed++; // its reply is still to come: not for the next request
      this.reportPending(old, ['Request queue full']);
    }
  }

  /** Whether the server will not answer this request (CLIENT REPLY OFF / SKIP), updating the mode. */
  private noReply(command: string, method: string, args: string[]): boolean {
    if (command === 'RESET') {
      this.replies = 'on';
      return false;
    }
    const mode = method === 'CLIENT REPLY' ? args[2]?.toUpperCase() : undefined;
    if (mode === 'ON') {
      this.replies = 'on';
      return false; // answered with +OK
    }
    if (mode === 'OFF' || mode === 'SKIP') {
      // the command itself gets no reply; SKIP also silences the next one
      if (this.replies !== 'off') this.replies = mode === 'OFF' ? 'off' : 'skip';
      return true;
    }
    if (this.replies === 'off') return true;
    if (this.replies === 'skip') {
      this.replies = 'on';
      return true;
    }
    return false;
  }

  // ---- replies --------------------------------------------------------------

  private onReply(m: RespMessage): void {
    if (this.dead) return;
    const first = m.items[0];
    const kind = (m.type === T_ARRAY || m.type === T_PUSH) && typeof first === 'string' ? first.toLowerCase() : undefined;
    if (m.type === T_PUSH) this.resp3 = true;
    const head = this.peek();

    if (kind !== undefined && CONFIRMATION_KINDS.has(kind) && m.count === 3 && m.itemTypes[2] === T_INTEGER) {
      const subscribed = this.nChannels + this.nPatterns + this.nShard > 0;
      if (m.type === T_PUSH || subscribed || head === undefined || head.kind === kind) {
        this.onConfirmation(kind, m, head);
        return;
      }
    }
    if (m.type === T_PUSH) {
      this.pushes++;
      return;
    }
    if (kind !== undefined && m.type === T_ARRAY && MESSAGE_KINDS.get(kind) === m.count) {
      const subscribed = this.nChannels + this.nPatterns + this.nShard > 0;
      if ((subscribed && !this.resp3) || head === undefined) {
        this.pushes++;
        return;
      }
    }
    if (this.monitor && m.type === T_SIMPLE && MONITOR_LINE.test(m.text)) {
      this.pushes++;
      return;
    }
    this.onOrdinaryReply(m);
  }

  private onConfirmation(kind: string, m: RespMessage, head: Pending | undefined): void {
    const count = Number(m.items[2]);
    if (Number.isFinite(count)) {
      if (kind === 'subscribe' || kind === 'unsubscribe') this.nChannels = Math.max(0, count - this.nPatterns);
      else if (kind === 'psubscribe' || kind === 'punsubscribe') this.nPatterns = Math.max(0, count - this.nChannels);
      else this.nShard = Math.max(0, count);
    }
    if (!head || head.kind !== kind || this.owed > 0) {
      this.pushes++; // not asked for (e.g. the request was before the capture)
      return;
    }
    (head.parts ??= []).push(m);
    let done: boolean;
    if (head.expect > 0) done = head.parts.length >= head.expect;
    else if (m.items[1] === null) done = true; // nothing was subscribed
    else if (kind === 'unsubscribe') done = this.nChannels === 0;
    else if (kind === 'punsubscribe') done = this.nPatterns === 0;
    else if (kind === 'sunsubscribe') done = this.nShard === 0;
    else done = true;
    if (done) {
      this.shift();
      this.emitPair(head.req, this.response(head.parts));
    }
  }

  private onOrdinaryReply(m: RespMessage): void {
    let head = this.peek();
    if (head && head.parts) {
      // a pub/sub command with an open count of confirmations: they are over
      this.shift();
      this.emitPair(head.req, this.response(head.parts));
      head = this.peek();
    }
    if (this.owed > 0) {
      this.owed--;
      this.lateReplies++;
      return;
    }
    const res = this.response([m]);
    if (!head || m.startNs < head.req.startNs) {
      this.emit({ response: span(res), notes: [...res.notes, 'Unmatched response'], data: this.data(undefined, res) });
      return;
    }
    this.shift();
    this.emitPair(head.req, res);
    if (!m.isError) this.afterReply(head.req);
  }

  /** Connection state changed by a successful command. */
  private afterReply(req: RedisRequest): void {
    switch (req.command) {
      case 'HELLO':
        if (req.args[1] === '3') this.resp3 = true;
        else if (req.args[1] === '2') this.resp3 = false;
        break;
      case 'MONITOR':
        this.monitor = true;
        break;
      case 'RESET':
        this.monitor = false;
        this.resp3 = false;
        this.nChannels = this.nPatterns = this.nShard = 0;
        break;
      case 'SYNC':
      case 'PSYNC':
        // a replication stream follows (RDB payload, then the master's commands)
        this.stop();
        break;
      default:
        break;
    }
  }

  private response(parts: RespMessage[]): RedisResponse {
    const first = parts[0] as RespMessage;
    const last = parts[parts.length - 1] as RespMessage;
    let bytes = 0;
    let gapBytes = 0;
    let truncated = false;
    const notes: string[] = [];
    for (const p of parts) {
      bytes += p.bytes;
      gapBytes += p.gapBytes;
      truncated ||= p.truncated;
      for (const n of p.notes) if (!notes.includes(n)) notes.push(n);
    }
    let value = parts.length === 1 ? first.text : parts.map((p) => p.text).join(', ');
    if (value.length > this.maxText + 3) {
      value = `${value.slice(0, this.maxText)}...`;
      truncated = true;
    }
    return {
      startNs: first.startNs,
      endNs: last.endNs,
      streamOffset: first.streamOffset,
      bytes,
      type: typeName(first.type),
      isError: first.isError,
      value,
      truncated,
      parts: parts.length,
      gapBytes,
      notes,
    };
  }

  // ---- reporting ------------------------------------------------------------

  private serverDesync(ts: number, lost: boolean): void {
    // replies were lost: requests sent until then may never see theirs
    this.owed = 0;
    for (;;) {
      const head = this.peek();
      if (!head || head.req.startNs > ts) break;
      this.shift();
      this.reportPending(head, lost ? ['Packet loss while capturing the response'] : []);
    }
  }

  /** A request leaves the queue without (more) reply: matched if confirmations came, else unmatched. */
  private reportPending(p: Pending, notes: string[]): void {
    if (p.parts) {
      this.emitPair(p.req, this.response(p.parts));
      return;
    }
    this.emit({
      request: span(p.req),
      notes: [...p.req.notes, 'Unmatched request', ...notes],
      data: this.data(p.req, undefined),
    });
  }

  private emitPair(req: RedisRequest, res: RedisResponse): void {
    const notes = [...req.notes];
    for (const n of res.notes) if (!notes.includes(n)) notes.push(n);
    this.emit({ request: span(req), response: span(res), notes, data: this.data(req, res) });
  }

  private data(request: RedisRequest | undefined, response: RedisResponse | undefined): RedisData {
    const d: RedisData = { request, response };
    if (this.pushes > 0) d.pushes = this.pushes;
    if (this.lateReplies > 0) d.lateReplies = this.lateReplies;
    this.pushes = 0;
    this.lateReplies = 0;
    return d;
  }

  private emit(txn: ProtocolTransaction<RedisData>): void {
    try {
      this.sink.onTransaction(txn);
    } catch (err) {
      this.reportError(`sink error: ${err instanceof Error ? err.message : String(err)}`, false);
    }
  }

  private reportError(reason: string, fatal: boolean): void {
    try {
      this.sink.onError(reason, fatal);
    } catch {
      // a failing sink must not break parsing
    }
  }

  // ---- queue ----------------------------------------------------------------

  private peek(): Pending | undefined {
    return this.qHead < this.queue.length ? this.queue[this.qHead] : undefined;
  }

  private shift(): Pending | undefined {
    if (this.qHead >= this.queue.length) return undefined;
    const p = this.queue[this.qHead] as Pending;
    this.queue[this.qHead] = undefined as unknown as Pending;
    this.qHead++;
    this.queueBytes -= p.size;
    if (this.qHead === this.queue.length) {
      this.queue = [];
      this.qHead = 0;
    } else if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return p;
  }

  private stop(): void {
    this.dead = true;
    this.client.stop();
    this.server.stop();
  }

  private internalError(err: unknown): void {
    this.stop();
    this.reportError(`internal parser error: ${err instanceof Error ? err.message : String(err)}`, true);
  }
}

/** Redis on one connection; see the module comment. */
export function createRedisSession(sink: TransactionSink<RedisData>, options: RedisSessionOptions = {}): ProtocolSession {
  return new RedisSession(sink, options);
}
