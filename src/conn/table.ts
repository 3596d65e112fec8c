import type { CaptureEvent } from '../capture/events';
import { EventKind } from '../capture/layout';
import type { ProtocolName, Sender } from '../protocols/types';
import type { ProcessInfo } from './process-info';
import type { FlowTuple } from '../txn/types';

/** One socket the agent has seen (one end of a TCP connection). */
export interface Conn {
  sockId: number;
  tgid: number;
  netns: number;
  /** Which end of the connection this socket is. */
  role: Sender;
  /** undefined while content inference has not decided (unknown port). */
  protocol?: ProtocolName;
  /** Inference decided this is none of ours: its events are dropped. */
  ignored: boolean;
  tuple: FlowTuple;
  /** The owning process; undefined for traffic seen on the wire (pcap, AF_PACKET). */
  process?: ProcessInfo;
  /** Next expected TCP sequence number per direction of this socket (egress, ingress). */
  nextSeq: [number | undefined, number | undefined];
  /** Sequence number of the first byte the parser saw, per sender. */
  baseSeq: { client?: number; server?: number };
  lastSeenMs: number;
  /** Keys of this socket and of its peer in the tuple index (computed once). */
  key: string;
  peerKey: string;
}

export interface ConnTableOptions {
  /** Protocol of a server port. */
  protocolOfPort: (port: number) => ProtocolName | undefined;
  /** Keep sockets of unknown ports (content inference) instead of dropping them. */
  infer?: boolean;
  lookupProcess: (e: CaptureEvent) => ProcessInfo;
  maxConns?: number;
  now?: () => number;
}

/** Socket identity → connection. Role from connect/accept, else from the ports. */
export class ConnTable {
  private readonly conns = new Map<number, Conn>();
  private readonly byTuple = new Map<string, Conn>();
  private evictions = 0;

  constructor(private readonly options: ConnTableOptions) {}

  get size(): number {
    return this.conns.size;
  }

  get evicted(): number {
    return this.evictions;
  }

  get(sockId: number): Conn | undefined {
    return this.conns.get(sockId);
  }

  /** The connection for an event, created on first sight; undefined when no protocol applies. */
  resolve(e: CaptureEvent, onEvict: (c: Conn) => void): Conn | undefined {
    const now = (this.options.now ?? Date.now)();
    let conn = this.conns.get(e.sockId);
    if (conn && (e.kind === EventKind.CONNECT || e.kind === EventKind.ACCEPT || !sameEnds(conn, e))) {
      // a new socket reusing the inode number: start over
      this.remove(conn);
      onEvict(conn);
      conn = undefined;
    }
    if (!conn) {
      const role = this.roleOf(e);
      if (!role) return undefined;
      const tuple = tupleOf(e, role);
      const protocol = this.options.protocolOfPort(tuple.serverPort);
      if (!protocol && !this.options.infer) return undefined;
      if (this.conns.size >= (this.options.maxConns ?? 262_144)) {
        // full: the oldest connection goes (insertion order: O(1) even under a connection flood)
        const oldest = this.conns.values().next();
        if (!oldest.done) {
          this.evictions++;
          this.remove(oldest.value);
          onEvict(oldest.value);
        }
      }
      conn = {
        sockId: e.sockId,
        tgid: e.tgid,
        netns: e.netns,
        role,
        protocol,
        ignored: false,
        tuple,
        process: e.tgid > 0 ? this.options.lookupProcess(e) : undefined,
        nextSeq: [undefined, undefined],
        baseSeq: {},
        lastSeenMs: now,
        key: tupleKey(tuple, role),
        peerKey: tupleKey(tuple, role === 'client' ? 'server' : 'client'),
      };
      this.conns.set(e.sockId, conn);
      this.byTuple.set(conn.key, conn);
    } else {
      conn.lastSeenMs = now;
    }
    return conn;
  }

  /** The socket at the other end of this connection, when it is on this host and seen. */
  peerOf(conn: Conn): Conn | undefined {
    return this.byTuple.get(conn.peerKey);
  }

  remove(conn: Conn): void {
    if (this.conns.get(conn.sockId) === conn) this.conns.delete(conn.sockId);
    if (this.byTuple.get(conn.key) === conn) this.byTuple.delete(conn.key);
  }

  /** Connections idle for longer than `idleMs`. */
  idle(idleMs: number): Conn[] {
    const t = (this.options.now ?? Date.now)();
    const out: Conn[] = [];
    for (const c of this.conns.values()) if (t - c.lastSeenMs >= idleMs) out.push(c);
    return out;
  }

  *all(): Iterable<Conn> {
    yield* this.conns.values();
  }

  private roleOf(e: CaptureEvent): Sender | undefined {
    if (e.kind === EventKind.CONNECT) return 'client';
    if (e.kind === EventKind.ACCEPT) return 'server';
    // a socket open before the agent started: the side on a protocol port serves
    if (this.options.protocolOfPort(e.localPort)) return 'server';
    if (this.options.protocolOfPort(e.remotePort)) return 'client';
    if (!this.options.infer) return undefined;
    // unknown ports, role unseen: servers usually listen on the lower port
    return e.localPort < e.remotePort ? 'server' : 'client';
  }
}

function tupleOf(e: CaptureEvent, role: Sender): FlowTuple {
  return role === 'client'
    ? { family: e.family, clientIp: e.localIp, clientPort: e.localPort, serverIp: e.remoteIp, serverPort: e.remotePort }
    : { family: e.family, clientIp: e.remoteIp, clientPort: e.remotePort, serverIp: e.localIp, serverPort: e.localPort };
}

function sameEnds(c: Conn, e: CaptureEvent): boolean {
  const local = c.role === 'client' ? c.tuple.clientPort : c.tuple.serverPort;
  const remote = c.role === 'client' ? c.tuple.serverPort : c.tuple.clientPort;
  return e.localPort === local && e.remotePort === remote;
}

function tupleKey(t: FlowTuple, role: Sender): string {
  return `${role}|${t.clientIp}|${t.clientPort}|${t.serverIp}|${t.serverPort}`;
}
