import * as os from 'node:os';
import type { CaptureEvent } from '../capture/events';
import { EXEC_FILENAME, EventDir, EventKind, type VerdictName } from '../capture/layout';
import type { CaptureSink } from '../capture/source';
import type { Config } from '../config';
import { ConnTable, type Conn } from '../conn/table';
import { parseExecPayload, type ProcessCache } from '../conn/process-info';
import { createModules, portMap } from '../protocols/registry';
import type { ProtocolModule, ProtocolName, ProtocolSession, ProtocolTransaction, Sender } from '../protocols/types';
import { buildDocument, carryViews, monotonicToWall, type DocumentContext, type TxnDocument } from '../publish/document';
import type { Output } from '../outputs/types';
import { applyProcessors } from '../publish/processors';
import { createJoiner } from '../txn/join';
import { SeqMarks } from '../txn/seq-marks';
import type { Transaction, TransactionView } from '../txn/types';
import type { Logger } from '../util/logger';

/** How often timers run (ms): transaction timeouts, join windows, idle connections. */
export const TICK_MS = 100;
/**
 * How often they run while the pipeline holds nothing (Pipeline.holding): the
 * idle connection and process sweeps (every few seconds, minutes) need no more.
 * An idle agent's main thread then wakes ~20 times a second rather than ~30,
 * each wake-up ~0.17 ms of CPU on this VM.
 */
export const IDLE_TICK_MS = 1000;
/** A connection with no event for this long is forgotten (checked every IDLE_SWEEP_MS, with the process cache's sweep). */
const IDLE_CONN_MS = 5 * 60_000;
const IDLE_SWEEP_MS = 5_000;

export interface PipelineStats {
  events: number;
  dataBytes: number;
  capturedBytes: number;
  gapBytes: number;
  transactions: number;
  joined: number;
  unmatched: number;
  parseErrors: number;
  /** Documents dropped by processors (drop_event). */
  dropped: number;
  /** Server sockets timed from their client socket's parse instead of parsed (both ends local). */
  shadowed: number;
  /** Events whose handling failed (a bug): their connection was dropped. */
  internalErrors: number;
  /** Sockets of unknown ports recognised by content, and those found to be none of ours. */
  inferred: number;
  inferIgnored: number;
  connections: number;
  joinPending: number;
}

export interface Pipeline extends CaptureSink {
  /** Timers: transaction timeouts, join windows, idle connections. */
  tick(): void;
  /**
   * Whether a timer of tick's has something to do soon: a request waiting for its
   * response, a view for its peer's, a view for its process (a connection whose
   * requests were all answered is let go of by the next tick). While nothing is
   * held, tick has only the idle sweeps to do, and IDLE_TICK_MS is often enough.
   */
  holding(): boolean;
  /** Emit everything still held (shutdown). */
  flush(): void;
  stats(): PipelineStats;
}

export interface PipelineOptions {
  config: Config;
  outputs: Output[];
  processes: ProcessCache;
  logger: Logger;
  /** Monotonic clock in ns (the kernel's timestamps use the same clock). */
  monoNowNs?: () => number;
  now?: () => number;
  /** Monotonic ns → wall ms (a recording brings its own). */
  toWallMs?: (monoNs: number) => number;
  /** The protocol modules (default: from the configuration). */
  modules?: Map<ProtocolName, ProtocolModule>;
  /**
   * Decisions about sockets for the kernel's filter (content inference, shadowing),
   * once per batch: those since the last call. The array is emptied after the call
   * returns (copy it to keep it).
   */
  onVerdicts?: (verdicts: Array<[sockId: number, verdict: VerdictName]>) => void;
}

/** Bytes per direction looked at before content inference gives up. */
const INFER_BYTES = 2048;
/** Data events looked at before content inference gives up (the kernel lets more through meanwhile). */
const INFER_DECIDE_EVENTS = 8;

/** A socket of an unknown port whose protocol is not decided yet: its first events, copied. */
interface Inference {
  events: CaptureEvent[];
  client: Buffer;
  server: Buffer;
}

interface ConnState {
  /** The parser, on every socket but a shadow. */
  session?: ProtocolSession;
  /**
   * A server socket whose client socket is traced and parsed: not parsed itself,
   * only timed (sequence marks per direction, indexed by EventDir).
   */
  shadow?: [SeqMarks, SeqMarks];
  /** When the other end closed (wall ms): what is still pending then gets a short grace. */
  peerClosedMs?: number;
}

/** A client view waiting for its shadow server socket's marks. */
interface AwaitingServer {
  client: TransactionView;
  clientConn: Conn;
  server: Conn;
  marks: [SeqMarks, SeqMarks];
  deadlineMs: number;
}

const LOOPBACK_V4 = /^127\./;

function localAddresses(): Set<string> {
  const out = new Set<string>(['::1']);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) out.add(a.address);
  }
  return out;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { config, outputs, processes, logger } = options;
  // a closed peer's requests must reach the joiner before this end's views leave it
  const peerCloseGraceMs = Math.max(0, config.join_window_ms / 2 - TICK_MS);
  const monoNowNs = options.monoNowNs ?? (() => Number(process.hrtime.bigint()));
  const now = options.now ?? Date.now;
  const log = logger.child({ component: 'pipeline' });

  const modules = options.modules ?? createModules(config);
  const portProtocol = portMap(config, modules);

  const inferring = new Map<Conn, Inference>();
  // client views waiting for their shadow server's marks, per server socket in order
  const awaiting = new Map<Conn, AwaitingServer[]>();
  let awaitingCount = 0;
  let lastIdleSweepMs = now();
  const verdicts: Array<[number, VerdictName]> = [];
  const table = new ConnTable({
    protocolOfPort: (port) => portProtocol.get(port),
    infer: config.infer_protocols && modules.size > 0,
    lookupProcess: (e) => processes.lookup({ pid: e.tgid, comm: e.comm, ppid: e.ppid, uid: e.uid }),
    now,
  });
  const states = new Map<Conn, ConnState>();
  // connections whose session may hold requests waiting for a response
  const withPending = new Set<Conn>();
  let locals = localAddresses();
  let localsAt = now();

  const stats: PipelineStats = {
    events: 0,
    dataBytes: 0,
    capturedBytes: 0,
    gapBytes: 0,
    transactions: 0,
    joined: 0,
    unmatched: 0,
    parseErrors: 0,
    dropped: 0,
    internalErrors: 0,
    shadowed: 0,
    inferred: 0,
    inferIgnored: 0,
    connections: 0,
    joinPending: 0,
  };

  const docCtx: DocumentContext = {
    toWallMs: options.toWallMs ?? monotonicToWall(),
    hostname: os.hostname(),
    modules,
    tags: config.tags,
    keepViews: outputs.some((o) => o.wantsViews === true),
  };
  let outbox: TxnDocument[] = [];

  const joiner = createJoiner({
    windowMs: config.join_window_ms,
    now,
    emit(txn: Transaction) {
      stats.transactions++;
      if (txn.client && txn.server) stats.joined++;
      let doc: TxnDocument | undefined;
      try {
        const built = buildDocument(txn, docCtx);
        doc = applyProcessors(built, config.processors);
        if (doc && doc !== built) carryViews(built, doc);
      } catch (err) {
        internalError(err, 'building a document failed; transaction dropped');
        return;
      }
      if (doc) outbox.push(doc);
      else stats.dropped++;
    },
  });

  function internalError(err: unknown, what: string): void {
    stats.internalErrors++;
    if (stats.internalErrors <= 10 || stats.internalErrors % 1000 === 0) log.error({ err, count: stats.internalErrors }, what);
  }

  /** Forget a connection whose handling failed. */
  function drop(conn: Conn): void {
    inferring.delete(conn);
    states.delete(conn);
    withPending.delete(conn);
    table.remove(conn);
  }

  /** finish() and forget, whatever the session does. */
  function endConn(conn: Conn): void {
    try {
      finish(conn);
    } catch (err) {
      internalError(err, 'closing a connection failed');
    }
    drop(conn);
  }

  function publish(): void {
    if (outbox.length === 0) return;
    const docs = outbox;
    outbox = [];
    for (const o of outputs) o.publish(docs);
  }

  function mayHavePeer(conn: Conn): boolean {
    if (!conn.process) return false; // seen on the wire: there is no other view to wait for
    if (table.peerOf(conn)) return true;
    const remote = conn.role === 'client' ? conn.tuple.serverIp : conn.tuple.clientIp;
    if (now() - localsAt > 60_000) {
      locals = localAddresses();
      localsAt = now();
    }
    return LOOPBACK_V4.test(remote) || locals.has(remote);
  }

  function offer(conn: Conn, txn: ProtocolTransaction): void {
    const first = txn.request ?? txn.response;
    if (!first) return; // nothing on the wire to report
    const base = conn.baseSeq.client;
    const view: TransactionView = {
      protocol: conn.protocol!,
      side: conn.role,
      tuple: conn.tuple,
      process: conn.process,
      netns: conn.netns,
      txn,
      requestSeq: txn.request && base !== undefined ? (base + txn.request.streamOffset) >>> 0 : undefined,
      startNs: first.startNs,
      endNs: txn.response?.endNs ?? first.endNs,
    };
    if (!txn.request || !txn.response) stats.unmatched++;
    if (conn.role === 'client') {
      const peer = table.peerOf(conn);
      const marks = peer && states.get(peer)?.shadow;
      if (peer && marks) {
        const queue = awaiting.get(peer);
        const w: AwaitingServer = { client: view, clientConn: conn, server: peer, marks, deadlineMs: now() + config.join_window_ms };
        if (queue) queue.push(w);
        else awaiting.set(peer, [w]);
        awaitingCount++;
        resolveServer(peer, false);
        return;
      }
    }
    joiner.offer(view, mayHavePeer(conn));
  }

  /** The client socket at the other end, when it is traced and parsed here. */
  function parsedPeer(conn: Conn): Conn | undefined {
    if (conn.role !== 'server' || !conn.process) return undefined;
    const peer = table.peerOf(conn);
    return peer && peer.process && states.get(peer)?.session ? peer : undefined;
  }

  function stateOf(conn: Conn): ConnState {
    let state = states.get(conn);
    if (!state) {
      if (parsedPeer(conn)?.protocol === conn.protocol) {
        state = { shadow: [new SeqMarks(), new SeqMarks()] };
        stats.shadowed++;
        // its payload is not needed any more: the kernel stops copying it
        verdicts.push([conn.sockId, 'shadow']);
      } else {
        const session = modules.get(conn.protocol!)!.createSession({
          onTransaction: (txn) => offer(conn, txn),
          onError: (reason, fatal) => {
            stats.parseErrors++;
            log.debug({ sock: conn.sockId, pid: conn.tgid, protocol: conn.protocol, reason, fatal }, 'parse error');
          },
        });
        state = { session };
      }
      states.set(conn, state);
    }
    return state;
  }

  /**
   * Server-side timing of a client view from the shadow's marks: the timing,
   * 'pending' while the server's events for it may still come, 'lost' when
   * they were never captured.
   */
  function serverTiming(w: AwaitingServer): { startNs: number; endNs: number } | 'pending' | 'lost' {
    const { txn } = w.client;
    const [egress, ingress] = w.marks;
    const base = w.clientConn.baseSeq;
    const reqSeq = txn.request && base.client !== undefined ? (base.client + txn.request.streamOffset) >>> 0 : undefined;
    const resSeq = txn.response && base.server !== undefined ? (base.server + txn.response.streamOffset) >>> 0 : undefined;
    // the server read the request (ingress) and wrote the response (egress)
    const first: [SeqMarks, number] | undefined = reqSeq !== undefined ? [ingress, reqSeq] : resSeq !== undefined ? [egress, resSeq] : undefined;
    const last: [SeqMarks, number] | undefined =
      resSeq !== undefined
        ? [egress, (resSeq + txn.response!.bytes - 1) >>> 0]
        : reqSeq !== undefined
          ? [ingress, (reqSeq + txn.request!.bytes - 1) >>> 0]
          : undefined;
    if (!first || !last) return 'lost';
    const startNs = first[0].tsOf(first[1]);
    const endNs = last[0].tsOf(last[1]);
    if (startNs === undefined || endNs === undefined) {
      const gone = (startNs === undefined && first[0].passed(first[1])) || (endNs === undefined && last[0].passed(last[1]));
      return gone ? 'lost' : 'pending';
    }
    if (reqSeq !== undefined) ingress.trimBefore(reqSeq);
    if (resSeq !== undefined) egress.trimBefore(resSeq);
    return { startNs, endNs };
  }

  /**
   * Pair client views with their shadow server's timing, per server socket in
   * order (its marks are trimmed as views resolve): when a view is offered, when
   * the server's marks come, and on every tick. A view whose server events were
   * lost, or that waited past its deadline, is emitted alone.
   */
  function resolveServer(server: Conn, force: boolean): void {
    const queue = awaiting.get(server);
    if (!queue) return;
    let done = 0;
    for (; done < queue.length; done++) {
      const w = queue[done];
      const timing = serverTiming(w);
      if (timing === 'pending' && !force && now() < w.deadlineMs) break;
      if (typeof timing === 'string') {
        joiner.emitNow({ client: w.client });
        continue;
      }
      const view: TransactionView = { ...w.client, side: 'server', process: server.process, netns: server.netns, ...timing };
      joiner.emitNow({ client: w.client, server: view });
    }
    awaitingCount -= done;
    if (done === queue.length) awaiting.delete(server);
    else if (done > 0) queue.splice(0, done);
  }

  function resolveAwaiting(force: boolean): void {
    for (const server of [...awaiting.keys()]) resolveServer(server, force);
  }

  /** The connection ends: flush the parser, report what never got an answer. */
  function finish(conn: Conn): void {
    inferring.delete(conn);
    const state = states.get(conn);
    if (!state) return;
    state.session?.close(monoNowNs());
    withPending.delete(conn);
    states.delete(conn);
    // the other end can no longer answer (or be answered) on this connection either:
    // its waiting requests are reported shortly (its last events may still be in
    // flight on another CPU), well within the join window of this end's views
    const peer = table.peerOf(conn);
    const peerState = peer && states.get(peer);
    if (peerState?.session && peerState.session.pending() > 0) peerState.peerClosedMs = now();
  }

  /** Sender of a data event, from the socket's role and the direction. */
  function senderOf(conn: Conn, e: CaptureEvent): Sender {
    return (e.dir === EventDir.EGRESS) === (conn.role === 'client') ? 'client' : 'server';
  }

  /** Unknown port: collect the first bytes, ask every module, decide once. */
  function infer(conn: Conn, e: CaptureEvent): void {
    let inf = inferring.get(conn);
    if (!inf) {
      inf = { events: [], client: Buffer.alloc(0), server: Buffer.alloc(0) };
      inferring.set(conn, inf);
    }
    // copies: the batch buffer is not kept alive for undecided sockets
    inf.events.push({ ...e, payload: Buffer.from(e.payload), tail: Buffer.from(e.tail) });
    const from = senderOf(conn, e);
    if (e.len > 0 && inf[from].length < INFER_BYTES) {
      inf[from] = Buffer.concat([inf[from], e.payload.subarray(0, INFER_BYTES - inf[from].length)]);
    }
    let decided: ProtocolName | undefined;
    let undecided = false;
    for (const m of modules.values()) {
      const r = m.detect(inf.client, inf.server);
      if (r === 'yes') {
        decided = m.name;
        break;
      }
      if (r === 'need-more') undecided = true;
    }
    const exhausted = inf.events.length >= INFER_DECIDE_EVENTS || (inf.client.length >= INFER_BYTES && inf.server.length >= INFER_BYTES);
    if (!decided && undecided && !exhausted) return;
    inferring.delete(conn);
    verdicts.push([conn.sockId, decided !== undefined ? 'track' : 'ignore']);
    if (!decided) {
      conn.ignored = true;
      stats.inferIgnored++;
      return;
    }
    stats.inferred++;
    conn.protocol = decided;
    for (const held of inf.events) onData(conn, held);
  }

  function onData(conn: Conn, e: CaptureEvent): void {
    if (conn.ignored) return;
    if (conn.protocol === undefined) {
      // the client end of this connection already decided for both
      const peer = parsedPeer(conn);
      if (peer?.protocol) {
        conn.protocol = peer.protocol;
        verdicts.push([conn.sockId, 'track']);
      } else {
        infer(conn, e);
        return;
      }
    }
    const from = senderOf(conn, e);
    const state = stateOf(conn);
    // the data was handed over at enter for sends, arrived at exit for receives
    const ts = e.dir === EventDir.EGRESS ? e.enterNs : e.tsNs;
    if (state.shadow) {
      state.shadow[e.dir].add(e.seq, e.len, ts);
      if (e.len > 0) conn.nextSeq[e.dir] = (e.seq + e.len) >>> 0;
      // a response written: the views waiting for it can be timed (the rest wait for a tick)
      if (e.dir === EventDir.EGRESS) resolveServer(conn, false);
      return;
    }
    const session = state.session!;
    if (e.len === 0) {
      if (e.dir === EventDir.INGRESS) session.end(from, ts);
      return;
    }
    stats.dataBytes += e.len;
    stats.capturedBytes += e.payload.length + e.tail.length;
    let head = e.payload;
    let tail = e.tail;
    let len = e.len;
    let seq = e.seq;
    const expected = conn.nextSeq[e.dir];
    if (expected !== undefined && seq !== expected) {
      const ahead = (seq - expected) >>> 0;
      if (ahead < 0x80000000) {
        // bytes between the last event and this one were never seen (lost event, unhooked call)
        if (conn.baseSeq[from] === undefined) conn.baseSeq[from] = expected;
        session.gap(from, ahead, ts, true);
        stats.gapBytes += ahead;
      } else {
        // overlaps what was already fed (concurrent readers): keep only the new bytes
        const behind = (expected - seq) >>> 0;
        if (behind >= len) return;
        const cutHead = Math.min(behind, head.length);
        head = head.subarray(cutHead);
        const middle = len - e.payload.length - e.tail.length;
        const cutTail = Math.max(0, behind - e.payload.length - middle);
        tail = tail.subarray(Math.min(cutTail, tail.length));
        len -= behind;
        seq = expected;
      }
    }
    if (conn.baseSeq[from] === undefined) conn.baseSeq[from] = seq;
    if (head.length > 0) session.feed(from, head, ts);
    const missing = len - head.length - tail.length;
    if (missing > 0) {
      // only the head and the tail were copied (max_payload): a gap by design
      session.gap(from, missing, ts, false);
      stats.gapBytes += missing;
    }
    if (tail.length > 0) session.feed(from, tail, ts);
    if (session.pending() > 0) withPending.add(conn);
    conn.nextSeq[e.dir] = (seq + len) >>> 0;
  }

  function handleEvent(e: CaptureEvent): void {
    if (e.kind === EventKind.EXEC) {
      processes.noteExec?.(parseExecPayload(e.tgid, e.comm, e.payload, EXEC_FILENAME));
      return;
    }
    const conn = table.resolve(e, finish);
    if (!conn) return;
    switch (e.kind) {
      case EventKind.DATA:
        onData(conn, e);
        break;
      case EventKind.CONNECT:
        conn.nextSeq[EventDir.EGRESS] = e.seq;
        break;
      case EventKind.ACCEPT:
        conn.nextSeq[EventDir.INGRESS] = e.seq;
        break;
      case EventKind.CLOSE:
        finish(conn);
        table.remove(conn);
        break;
    }
  }

  return {
    onEvent(e) {
      stats.events++;
      try {
        handleEvent(e);
      } catch (err) {
        // a bug must cost one connection, never the agent
        internalError(err, 'event handling failed; connection dropped');
        const conn = table.get(e.sockId);
        if (conn) drop(conn);
      }
    },
    onBatchEnd() {
      publish();
      if (verdicts.length > 0) {
        // handed over, then emptied in place: a fresh [] each time had another map, and the
        // optimized onData that pushes onto it was thrown away at the next new connection
        // (--trace-deopt: "wrong map" at the push, each time a client came)
        options.onVerdicts?.(verdicts);
        verdicts.length = 0;
      }
    },
    tick() {
      const t = monoNowNs();
      const timeoutNs = config.transaction_timeout_ms * 1e6;
      for (const conn of withPending) {
        const state = states.get(conn);
        try {
          if (state?.session && state.session.pending() > 0) {
            const peerGone = state.peerClosedMs !== undefined && now() - state.peerClosedMs > peerCloseGraceMs;
            state.session.expire(peerGone ? Infinity : t - timeoutNs);
          }
        } catch (err) {
          internalError(err, 'expiring requests failed; connection dropped');
          drop(conn);
          continue;
        }
        if (!state?.session || state.session.pending() === 0) {
          if (state) state.peerClosedMs = undefined;
          withPending.delete(conn);
        }
      }
      if (now() - lastIdleSweepMs >= IDLE_SWEEP_MS) {
        lastIdleSweepMs = now();
        for (const conn of table.idle(IDLE_CONN_MS)) endConn(conn);
        // processes unused for minutes: a walk of the whole cache, not for every tick
        processes.sweep();
      }
      resolveAwaiting(false);
      joiner.tick();
      publish();
    },
    flush() {
      for (const conn of [...table.all()]) endConn(conn);
      resolveAwaiting(true);
      joiner.flush();
      publish();
    },
    holding: () => withPending.size > 0 || joiner.pending() > 0 || awaitingCount > 0,
    stats() {
      return { ...stats, connections: table.size, joinPending: joiner.pending() + awaitingCount };
    },
  };
}
