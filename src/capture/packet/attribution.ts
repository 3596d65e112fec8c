import * as fs from 'node:fs';
import { ipBytes } from '../../util/community-id';
import type { Endpoint } from '../pcap/reassembly';

/**
 * Process attribution of packets, where the socket is local: the 4-tuple →
 * socket (state, uid, inode) by an exact NETLINK_SOCK_DIAG lookup in the
 * agent's network namespace and, through a socket opened in each, in the
 * others; inode → process from the /proc/<pid>/fd links (cached, read again
 * on a miss: likely owners, then new processes and those first read moments
 * ago, then a cost-bounded slice of a full rescan, sooner for a connection newer
 * than the last one). A server whose accepted
 * socket is not found (not accepted yet, already closed, not found in time) is
 * the process listening on its port. Best effort: a short-lived client may be
 * gone before it is looked up.
 */

/** The process holding one end of a flow. */
export interface SocketOwner {
  pid: number;
  comm: string;
  ppid: number;
  uid: number;
  /** Network namespace (inode) of the socket. */
  netns: number;
  /** The connection's own socket was not found: this is the process listening on the server port. */
  viaListener: boolean;
}

export interface FlowEnds {
  family: 4 | 6;
  client: Endpoint;
  server: Endpoint;
  /**
   * When the connection was first seen, on the attributor's clock (`now`): a full
   * rescan that started before it cannot have read its client's socket.
   */
  seenAtMs?: number;
}

export interface Attribution {
  client?: SocketOwner;
  server?: SocketOwner;
}

/** A socket the kernel knows: [TCP state, uid, inode] (inode 0: no process holds it). */
export type FoundSocket = [state: number, uid: number, inode: number];

/** Exact socket lookups in one network namespace (addon/sock-diag.cc). */
export interface SocketLookup {
  /** The socket with these ends, else the listener that would take such a connection; null: none. */
  lookup(family: 4 | 6, local: Buffer, localPort: number, remote: Buffer, remotePort: number): FoundSocket | null;
  close(): void;
}

export interface AttributionStats {
  /** sock_diag lookups made. */
  lookups: number;
  /** /proc/<pid>/fd directories read. */
  fdScans: number;
  clientsFound: number;
  /** No such socket on this host (a remote client, or gone before the lookup). */
  clientsNotLocal: number;
  /** The socket was there but held by no process (closed: TIME_WAIT). */
  clientsClosed: number;
  /** The socket was there but its process was not found in time. */
  clientsUnowned: number;
  serversFound: number;
  /** Named after the process listening on the port (the connection's socket was not found). */
  serversViaListener: number;
  serversMissed: number;
  /** Network namespaces searched (the agent's included). */
  namespaces: number;
  /** Namespaces whose lookup socket could not be opened. */
  namespaceErrors: number;
}

export interface Attributor {
  /** Owners of the ends of a flow that are sockets of this host. */
  attribute(flow: FlowEnds): Attribution;
  stats(): AttributionStats;
  /** Close the lookup sockets. */
  close(): void;
}

export interface AttributorOptions {
  /** Opens a lookup in this process's namespace, or in the one at nsPath (/proc/<pid>/ns/net). */
  openLookup: (nsPath?: string) => SocketLookup;
  procRoot?: string;
  /** Search the other network namespaces too. */
  allNamespaces?: boolean;
  /** Time one attribution may spend reading /proc fd links (ms). */
  budgetMs?: number;
  now?: () => number;
  /** The clock that measures what reading /proc costs (ms; default performance.now). */
  costClock?: () => number;
}

export const TCP_LISTEN = 10;
/** Network namespaces are listed again at most this often. */
const NETNS_INTERVAL_MS = 2000;
/** A full rescan of every process's fds starts at most this often (and ≤ 10% of a CPU, but see STALE_SCAN_COST_FACTOR). */
const FULL_SCAN_MIN_INTERVAL_MS = 20;
const FULL_SCAN_COST_FACTOR = 10;
/**
 * A client socket that the last full rescan cannot have read (the connection is
 * newer than the round's start) may start one sooner: after this many times the
 * last round's cost, each process read again after this many times its own (the
 * capture's attribution share bounds it too).
 */
const STALE_SCAN_COST_FACTOR = 2;
/** One process's fds are read again at most after this many times their cost. */
const PID_SCAN_COST_FACTOR = 10;
/** Client processes remembered per server endpoint (likely owners of its next connections). */
const CLIENT_HINTS = 8;
/**
 * A process first read less than this long ago is read again when a socket is
 * not found: its first read may have come between its exec and its connect.
 */
const YOUNG_MS = 5000;
const MAX_HINT_KEYS = 4096;

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readLink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** Process ids in /proc, ascending. */
function listPids(procRoot: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(procRoot);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) if (/^\d+$/.test(n)) out.push(Number(n));
  return out.sort((a, b) => a - b);
}

/** "socket:[12345]" → 12345 */
export function socketInode(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

/** "net:[4026531840]" → 4026531840 */
export function namespaceInode(link: string): number | undefined {
  const m = /^[a-z_]+:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

const isLoopback = (ip: string) => ip.startsWith('127.') || ip === '::1';

interface Namespace {
  netns: number;
  lookup: SocketLookup;
}

export function createAttributor(options: AttributorOptions): Attributor {
  const { openLookup, procRoot = '/proc', allNamespaces = true, budgetMs = 10, now = Date.now, costClock = () => performance.now() } = options;
  const stats: AttributionStats = {
    lookups: 0,
    fdScans: 0,
    clientsFound: 0,
    clientsNotLocal: 0,
    clientsClosed: 0,
    clientsUnowned: 0,
    serversFound: 0,
    serversViaListener: 0,
    serversMissed: 0,
    namespaces: 1,
    namespaceErrors: 0,
  };

  // ---- network namespaces ---------------------------------------------------
  const ownNetns = namespaceInode(readLink(`${procRoot}/self/ns/net`) ?? '') ?? 0;
  const own: Namespace = { netns: ownNetns, lookup: openLookup() };
  /** the others, by namespace inode */
  const others = new Map<number, Namespace>();
  /** namespaces that could not be entered (not tried again) */
  const refused = new Set<number>();
  let namespacesAt = -Infinity;

  function listNamespaces(): void {
    if (!allNamespaces || now() - namespacesAt < NETNS_INTERVAL_MS) return;
    namespacesAt = now();
    const seen = new Set<number>();
    for (const pid of listPids(procRoot)) {
      const path = `${procRoot}/${pid}/ns/net`;
      const ns = namespaceInode(readLink(path) ?? '');
      if (ns === undefined || ns === ownNetns || seen.has(ns)) continue;
      seen.add(ns);
      if (others.has(ns) || refused.has(ns)) continue;
      try {
        others.set(ns, { netns: ns, lookup: openLookup(path) });
      } catch {
        refused.add(ns);
        stats.namespaceErrors++;
      }
    }
    // namespaces nobody is in any more
    for (const [ns, n] of others) {
      if (!seen.has(ns)) {
        n.lookup.close();
        others.delete(ns);
      }
    }
    stats.namespaces = 1 + others.size;
  }

  /** Where to look for a flow's sockets: the agent's namespace, then (not for loopback) the others. */
  function namespacesFor(flow: FlowEnds): Namespace[] {
    if (isLoopback(flow.client.ip) || isLoopback(flow.server.ip)) return [own];
    listNamespaces();
    return [own, ...others.values()];
  }

  function find(ns: Namespace, family: 4 | 6, local: Endpoint, remote: Endpoint, remotePort = remote.port): FoundSocket | null {
    stats.lookups++;
    try {
      return ns.lookup.lookup(family, ipBytes(local.ip), local.port, ipBytes(remote.ip), remotePort);
    } catch {
      return null; // a namespace gone meanwhile, a timeout: not found
    }
  }

  // ---- socket owners --------------------------------------------------------
  /** inode → processes holding it */
  const owners = new Map<number, number[]>();
  /**
   * process → the socket inodes it held when last read, when, what that cost, and
   * when it was first read (-Infinity: running when the agent started)
   */
  const scanned = new Map<number, { inodes: number[]; at: number; costMs: number; first: number }>();
  let fullQueue: number[] = [];
  let fullAt = -Infinity;
  /** How long the last full round took, from its first slice's start to its last's end (the time between slices included): it sets when the next may start. */
  let fullCostMs = 0;
  let fullStarted = 0;
  const clientHints = new Map<string, number[]>();

  function forgetPid(pid: number): void {
    const old = scanned.get(pid);
    if (!old) return;
    for (const ino of old.inodes) {
      const list = owners.get(ino);
      if (!list) continue;
      const rest = list.filter((p) => p !== pid);
      if (rest.length > 0) owners.set(ino, rest);
      else owners.delete(ino);
    }
    scanned.delete(pid);
  }

  function scanPid(pid: number, first = scanned.get(pid)?.first ?? now()): void {
    const started = costClock();
    stats.fdScans++;
    forgetPid(pid);
    let fds: string[];
    try {
      fds = fs.readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      return; // gone, or not ours to read
    }
    const inodes: number[] = [];
    for (const fd of fds) {
      const ino = socketInode(readLink(`${procRoot}/${pid}/fd/${fd}`) ?? '');
      if (ino === undefined) continue;
      inodes.push(ino);
      const list = owners.get(ino);
      if (!list) owners.set(ino, [pid]);
      else if (!list.includes(pid)) list.push(pid);
    }
    scanned.set(pid, { inodes, at: now(), costMs: costClock() - started, first });
  }

  /**
   * May this process's fds be read again now? Sooner when its last read ended
   * before the connection looked up was seen (that read cannot have held its socket).
   */
  function rescannable(pid: number, seenAtMs?: number): boolean {
    const s = scanned.get(pid);
    if (!s) return true;
    const factor = seenAtMs !== undefined && s.at < seenAtMs ? STALE_SCAN_COST_FACTOR : PID_SCAN_COST_FACTOR;
    return now() - s.at >= Math.max(1, s.costMs * factor);
  }

  /** Processes holding the inode: known ones, then hinted ones, new (or young) ones, then a slice of a full rescan. */
  function holders(inode: number, hints: number[], deadline: number, seenAtMs?: number): number[] | undefined {
    const known = owners.get(inode);
    if (known) return known;
    for (const pid of hints) {
      if (rescannable(pid)) scanPid(pid);
      if (owners.has(inode)) return owners.get(inode);
    }
    const pids = listPids(procRoot);
    const alive = new Set(pids);
    for (const pid of [...scanned.keys()]) if (!alive.has(pid)) forgetPid(pid);
    // newest first: a new connection's process is often a new one (a client run for it),
    // and one read moments after it started may have connected since
    for (let i = pids.length - 1; i >= 0; i--) {
      const s = scanned.get(pids[i]);
      if (s && (now() - s.first >= YOUNG_MS || !rescannable(pids[i]))) continue;
      scanPid(pids[i]);
      if (owners.has(inode)) return owners.get(inode);
      if (costClock() > deadline) return undefined;
    }
    const waited = (costFactor: number) => now() - fullAt >= Math.max(FULL_SCAN_MIN_INTERVAL_MS, fullCostMs * costFactor);
    // an old process's new connection: the last round started before it existed
    const stale = seenAtMs !== undefined && fullAt < seenAtMs && waited(STALE_SCAN_COST_FACTOR);
    if (fullQueue.length === 0 && (waited(FULL_SCAN_COST_FACTOR) || stale)) {
      fullQueue = pids;
      fullAt = now();
      fullStarted = costClock();
    }
    while (fullQueue.length > 0 && costClock() <= deadline) {
      const pid = fullQueue.pop()!;
      if (rescannable(pid, seenAtMs)) scanPid(pid);
      if (fullQueue.length === 0) {
        fullCostMs = costClock() - fullStarted;
      }
      if (owners.has(inode)) return owners.get(inode);
    }
    return undefined;
  }

  function describe(pid: number, uid: number, netns: number, viaListener: boolean): SocketOwner | undefined {
    const stat = readText(`${procRoot}/${pid}/stat`);
    if (stat === undefined) return undefined;
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (open < 0 || close < open) return undefined;
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    return { pid, comm: stat.slice(open + 1, close), ppid: Number.isInteger(ppid) ? ppid : 0, uid, netns, viaListener };
  }

  function rememberClient(server: Endpoint, pid: number): void {
    const key = `${server.ip}|${server.port}`;
    const list = clientHints.get(key) ?? [];
    if (!list.includes(pid)) {
      list.unshift(pid);
      if (list.length > CLIENT_HINTS) list.pop();
    }
    clientHints.delete(key);
    if (clientHints.size >= MAX_HINT_KEYS) clientHints.delete(clientHints.keys().next().value!);
    clientHints.set(key, list);
  }

  function client(flow: FlowEnds, spaces: Namespace[], deadline: number): SocketOwner | undefined {
    for (const ns of spaces) {
      const s = find(ns, flow.family, flow.client, flow.server);
      if (!s || s[0] === TCP_LISTEN) continue;
      if (s[2] === 0) {
        stats.clientsClosed++;
        return undefined;
      }
      const pids = holders(s[2], clientHints.get(`${flow.server.ip}|${flow.server.port}`) ?? [], deadline, flow.seenAtMs);
      const owner = pids && describe(pids[0], s[1], ns.netns, false);
      if (!owner) {
        stats.clientsUnowned++;
        return undefined;
      }
      stats.clientsFound++;
      rememberClient(flow.server, owner.pid);
      return owner;
    }
    stats.clientsNotLocal++;
    return undefined;
  }

  function server(flow: FlowEnds, spaces: Namespace[], deadline: number): SocketOwner | undefined {
    let accepted: { ns: Namespace; s: FoundSocket } | undefined;
    const listeners: Array<{ ns: Namespace; s: FoundSocket }> = [];
    for (const ns of spaces) {
      const s = find(ns, flow.family, flow.server, flow.client);
      if (!s) continue;
      if (s[0] !== TCP_LISTEN) {
        accepted = { ns, s };
        break;
      }
      listeners.push({ ns, s });
    }
    // the listener of the connection's namespace, else this host's, else the only one there is
    let listener: { ns: Namespace; s: FoundSocket } | undefined;
    if (accepted) {
      // remote port 0: no connection uses it, only a listener can match
      const s = find(accepted.ns, flow.family, flow.server, flow.client, 0);
      if (s && s[0] === TCP_LISTEN) listener = { ns: accepted.ns, s };
    } else {
      listener = listeners.find((l) => l.ns === own) ?? (listeners.length === 1 ? listeners[0] : undefined);
    }
    const listening = listener && listener.s[2] !== 0 ? holders(listener.s[2], [], deadline) : undefined;
    if (accepted && accepted.s[2] !== 0) {
      // the accepted socket: the listening processes first (a forking server's child is new)
      const pids = holders(accepted.s[2], listening ?? [], deadline);
      const owner = pids && describe(pids[0], accepted.s[1], accepted.ns.netns, false);
      if (owner) return owner;
    }
    // not accepted yet, gone already, or not found in time: who listens serves
    if (!listener || !listening) return undefined;
    return describe(listening[0], listener.s[1], listener.ns.netns, true);
  }

  // known from the start: every process's sockets
  for (const pid of listPids(procRoot)) scanPid(pid, -Infinity);
  fullAt = now();

  return {
    attribute(flow) {
      const deadline = costClock() + budgetMs;
      const spaces = namespacesFor(flow);
      const c = client(flow, spaces, deadline);
      const s = server(flow, spaces, deadline);
      if (s && !s.viaListener) stats.serversFound++;
      else if (s) stats.serversViaListener++;
      else stats.serversMissed++;
      return { client: c, server: s };
    },
    stats: () => ({ ...stats }),
    close() {
      own.lookup.close();
      for (const n of others.values()) n.lookup.close();
      others.clear();
    },
  };
}
