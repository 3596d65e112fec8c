import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { createAttributor, namespaceInode, socketInode, TCP_LISTEN, type Attributor, type FoundSocket, type SocketLookup } from '../../../../src/capture/packet/attribution';
import { formatIpv4, formatIpv6 } from '../../../../src/util/ip';

const ESTABLISHED = 1;
const TIME_WAIT = 6;
const OWN_NS = 4026531840;
const OTHER_NS = 4026532999;

interface FakeSocket {
  ns: number;
  local: string; // ip:port
  remote?: string; // ip:port; absent: a listener
  state: number;
  uid?: number;
  inode: number;
}

/** A /proc tree in a temporary directory, and the kernel's socket tables beside it. */
class FakeHost {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-proc-'));
  sockets: FakeSocket[] = [];
  lookups = 0;
  refuse = new Set<number>();

  constructor() {
    fs.mkdirSync(path.join(this.root, 'self/ns'), { recursive: true });
    fs.symlinkSync(`net:[${OWN_NS}]`, path.join(this.root, 'self/ns/net'));
  }

  process(pid: number, comm: string, inodes: number[], ns = OWN_NS): void {
    const dir = path.join(this.root, String(pid));
    fs.mkdirSync(path.join(dir, 'fd'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'ns'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (${comm}) S 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0`);
    fs.symlinkSync(`net:[${ns}]`, path.join(dir, 'ns/net'));
    fs.symlinkSync('/dev/null', path.join(dir, 'fd/0'));
    inodes.forEach((ino, i) => this.addFd(pid, ino, i + 3));
  }

  addFd(pid: number, inode: number, fd: number): void {
    fs.symlinkSync(`socket:[${inode}]`, path.join(this.root, String(pid), 'fd', String(fd)));
  }

  exit(pid: number): void {
    fs.rmSync(path.join(this.root, String(pid)), { recursive: true, force: true });
  }

  /** What sock_diag answers: the exact socket, else a listener of the port (as the kernel's lookup). */
  openLookup = (nsPath?: string): SocketLookup => {
    const ns = nsPath === undefined ? OWN_NS : namespaceInode(fs.readlinkSync(nsPath))!;
    if (this.refuse.has(ns)) throw Object.assign(new Error('failed to enter network namespace'), { code: 'EPERM' });
    return {
      lookup: (family, local, lport, remote, rport): FoundSocket | null => {
        this.lookups++;
        const ip = (b: Buffer) => (family === 4 ? formatIpv4(b, 0) : formatIpv6(b, 0));
        const l = `${ip(local)}:${lport}`;
        const r = `${ip(remote)}:${rport}`;
        const exact = this.sockets.find((s) => s.ns === ns && s.remote !== undefined && s.local === l && s.remote === r);
        const listener = this.sockets.find(
          (s) => s.ns === ns && s.remote === undefined && (s.local === l || s.local === `0.0.0.0:${lport}` || s.local === `[::]:${lport}`),
        );
        const found = exact ?? listener;
        return found ? [found.state, found.uid ?? 0, found.inode] : null;
      },
      close: () => {},
    };
  };

  attributor(now = () => 0) {
    return createAttributor({ openLookup: this.openLookup, procRoot: this.root, now, budgetMs: 1000 });
  }

  remove(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

const C = { ip: '127.0.0.1', port: 40000 };
const S = { ip: '127.0.0.1', port: 8080 };
const flow = { family: 4 as const, client: C, server: S };

describe('process attribution', () => {
  let host: FakeHost;
  beforeEach(() => {
    host = new FakeHost();
  });
  afterEach(() => host.remove());

  test('/proc link forms', () => {
    assert.equal(socketInode('socket:[12345]'), 12345);
    assert.equal(socketInode('pipe:[12345]'), undefined);
    assert.equal(socketInode('/dev/null'), undefined);
    assert.equal(namespaceInode('net:[4026531840]'), 4026531840);
    assert.equal(namespaceInode('garbage'), undefined);
  });

  test('both ends local: the client by its socket, the server by the accepted one', () => {
    host.process(700, 'nginx', [11, 12]);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', state: TCP_LISTEN, inode: 11 });
    let t = 0;
    const a = host.attributor(() => t);
    // the connection comes after the agent started: a new client process, a new accepted socket
    host.process(900, 'curl', [21]);
    host.addFd(700, 22, 9);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 21 });
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', remote: '127.0.0.1:40000', state: ESTABLISHED, uid: 33, inode: 22 });
    t += 5; // the server's fds may be read again
    const got = a.attribute(flow);
    assert.deepEqual(got.client, { pid: 900, comm: 'curl', ppid: 1, uid: 0, netns: OWN_NS, viaListener: false });
    assert.deepEqual(got.server, { pid: 700, comm: 'nginx', ppid: 1, uid: 33, netns: OWN_NS, viaListener: false });
    const s = a.stats();
    assert.equal(s.clientsFound, 1);
    assert.equal(s.serversFound, 1);
  });

  test("a server read moments ago is not read again: its listener names it", () => {
    host.process(700, 'nginx', [11]);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', state: TCP_LISTEN, inode: 11 });
    const a = host.attributor(() => 0);
    host.addFd(700, 22, 9);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', remote: '127.0.0.1:40000', state: ESTABLISHED, inode: 22 });
    const got = a.attribute(flow);
    assert.equal(got.server?.pid, 700);
    assert.equal(got.server?.viaListener, true);
    assert.equal(a.stats().serversViaListener, 1);
  });

  test('a connection not accepted yet: the listening process, marked so', () => {
    host.process(700, 'node', [11]);
    host.sockets.push({ ns: OWN_NS, local: '0.0.0.0:8080', state: TCP_LISTEN, uid: 1000, inode: 11 });
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', remote: '127.0.0.1:40000', state: ESTABLISHED, inode: 0 });
    const got = host.attributor().attribute(flow);
    assert.equal(got.server?.pid, 700);
    assert.equal(got.server?.viaListener, true);
    assert.equal(got.server?.uid, 1000);
  });

  test('a forking server: the accepted socket belongs to the new child, not to the listener', () => {
    host.process(600, 'postgres', [11]);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', state: TCP_LISTEN, inode: 11 });
    const a = host.attributor();
    host.process(650, 'postgres', [11, 31]);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', remote: '127.0.0.1:40000', state: ESTABLISHED, inode: 31 });
    assert.equal(a.attribute(flow).server?.pid, 650);
  });

  test('a closed client socket (TIME_WAIT) or a remote one has no process', () => {
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: TIME_WAIT, inode: 0 });
    const a = host.attributor();
    assert.equal(a.attribute(flow).client, undefined);
    const remote = { family: 4 as const, client: { ip: '10.9.9.9', port: 50000 }, server: S };
    assert.deepEqual(a.attribute(remote), { client: undefined, server: undefined });
    const s = a.stats();
    assert.equal(s.clientsClosed, 1);
    assert.equal(s.clientsNotLocal, 1);
    assert.equal(s.serversMissed, 2);
  });

  test('a process that was already running opens a new socket: found by a later rescan', () => {
    let t = 0;
    host.process(800, 'java', [40]);
    const a = host.attributor(() => t);
    host.addFd(800, 41, 10);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 41 });
    t += 1000; // past the rescan interval
    assert.equal(a.attribute(flow).client?.pid, 800);
    // known now: the next lookup reads no fd directory
    const scans = a.stats().fdScans;
    a.attribute(flow);
    assert.equal(a.stats().fdScans, scans);
  });

  /**
   * java, running since before the agent, read by a full rescan at t = 1000 (made by
   * another flow's socket that no process holds), then connects. Each look at /proc
   * costs 10 ms on the cost clock: the round ~40 ms (the next due 400 ms after it),
   * java's read 10 ms (read again after 100 ms, or 20 for a newer connection).
   */
  function javaConnectsAfterARescan(): { a: Attributor; at: (ms: number) => void } {
    let t = 0;
    let clock = 0;
    host.process(800, 'java', [40]);
    const a = createAttributor({ openLookup: host.openLookup, procRoot: host.root, now: () => t, budgetMs: 1000, costClock: () => (clock += 10) });
    t = 1000;
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:39999', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 30 });
    assert.equal(a.attribute({ family: 4, client: { ip: '127.0.0.1', port: 39999 }, server: S }).client, undefined);
    host.addFd(800, 41, 10);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 41 });
    return { a, at: (ms) => (t = ms) };
  }

  test("an old process's connection newer than the last full rescan: the next rescan starts sooner than the usual interval", () => {
    const { a, at } = javaConnectsAfterARescan();
    at(1100);
    // seen before that rescan started: it could have read the socket, so none starts yet
    assert.equal(a.attribute({ ...flow, seenAtMs: 990 }).client, undefined);
    // seen after it started: it cannot have, so one starts (after twice its cost, not ten times)
    assert.equal(a.attribute({ ...flow, seenAtMs: 1050 }).client?.pid, 800);
  });

  test("that sooner rescan reads again a process it read moments ago, when that read ended before the connection was seen", () => {
    const { a, at } = javaConnectsAfterARescan();
    // 90 ms later: past twice the round's cost (80) and twice java's (20), short of ten times java's (100)
    at(1090);
    assert.equal(a.attribute({ ...flow, seenAtMs: 1050 }).client?.pid, 800);
  });

  test('a new process read before it opened its socket is read again when an unknown socket appears', () => {
    let t = 0;
    host.process(700, 'node', [11]);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', state: TCP_LISTEN, inode: 11 });
    const a = host.attributor(() => t);
    // curl has started (exec) but not connected yet when another flow makes the agent read the new processes
    host.process(900, 'curl', []);
    t += 1;
    const other = { family: 4 as const, client: { ip: '127.0.0.1', port: 39999 }, server: S };
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:8080', remote: '127.0.0.1:39999', state: ESTABLISHED, inode: 30 });
    a.attribute(other);
    const read = a.stats().fdScans;
    assert.ok(read > 0, 'the new process was read');
    // then it connects, within the full rescan's interval
    host.addFd(900, 21, 3);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 21 });
    t += 2;
    assert.equal(a.attribute(flow).client?.pid, 900);
  });

  test('processes that were running when the agent started are not taken for new ones', () => {
    let t = 0;
    for (let pid = 800; pid < 820; pid++) host.process(pid, 'idle', []);
    const a = host.attributor(() => t);
    const before = a.stats().fdScans;
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 21 });
    t += 5; // within the full rescan's interval
    assert.equal(a.attribute(flow).client, undefined);
    assert.equal(a.stats().fdScans, before, 'no fd directory read again');
  });

  test('the clients of a server are looked for first among its earlier clients', () => {
    let t = 0;
    host.process(800, 'app', [41]);
    for (let pid = 801; pid < 820; pid++) host.process(pid, 'idle', []);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 41 });
    const a = host.attributor(() => t);
    assert.equal(a.attribute(flow).client?.pid, 800);
    // a second connection of the same process, within the full-rescan interval
    host.addFd(800, 42, 11);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40001', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 42 });
    const before = a.stats().fdScans;
    t += 5;
    assert.equal(a.attribute({ ...flow, client: { ip: '127.0.0.1', port: 40001 } }).client?.pid, 800);
    assert.equal(a.stats().fdScans - before, 1, 'only the hinted process was read');
  });

  test('another network namespace: its sockets and processes, with its namespace', () => {
    const c = { ip: '10.213.0.1', port: 40000 };
    const s = { ip: '10.213.0.2', port: 8080 };
    host.process(500, 'server', [61, 62], OTHER_NS);
    host.sockets.push({ ns: OTHER_NS, local: '0.0.0.0:8080', state: TCP_LISTEN, inode: 61 });
    host.sockets.push({ ns: OTHER_NS, local: '10.213.0.2:8080', remote: '10.213.0.1:40000', state: ESTABLISHED, inode: 62 });
    host.process(501, 'curl', [63]);
    host.sockets.push({ ns: OWN_NS, local: '10.213.0.1:40000', remote: '10.213.0.2:8080', state: ESTABLISHED, inode: 63 });
    const got = host.attributor().attribute({ family: 4, client: c, server: s });
    assert.equal(got.client?.pid, 501);
    assert.equal(got.client?.netns, OWN_NS);
    assert.equal(got.server?.pid, 500);
    assert.equal(got.server?.netns, OTHER_NS);
    assert.equal(got.server?.viaListener, false);
  });

  test('loopback flows are looked up in the agent namespace only', () => {
    host.process(500, 'server', [61], OTHER_NS);
    host.sockets.push({ ns: OTHER_NS, local: '0.0.0.0:8080', state: TCP_LISTEN, inode: 61 });
    const a = host.attributor();
    assert.equal(a.attribute(flow).server, undefined, "another namespace's loopback is not ours to see");
  });

  test('a namespace that cannot be entered is counted and skipped', () => {
    host.refuse.add(OTHER_NS);
    host.process(500, 'server', [], OTHER_NS);
    host.process(700, 'nginx', [11]);
    host.sockets.push({ ns: OWN_NS, local: '0.0.0.0:8080', state: TCP_LISTEN, inode: 11 });
    const a = host.attributor();
    const got = a.attribute({ family: 4, client: { ip: '10.0.0.9', port: 40000 }, server: { ip: '10.0.0.1', port: 8080 } });
    assert.equal(got.server?.pid, 700);
    assert.equal(a.stats().namespaceErrors, 1);
    assert.equal(a.stats().namespaces, 1);
  });

  test('a process that exited before it was described is not named', () => {
    host.process(900, 'curl', []);
    const a = host.attributor();
    host.addFd(900, 21, 3);
    host.sockets.push({ ns: OWN_NS, local: '127.0.0.1:40000', remote: '127.0.0.1:8080', state: ESTABLISHED, inode: 21 });
    host.exit(900);
    assert.equal(a.attribute(flow).client, undefined);
  });
});
