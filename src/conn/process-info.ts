import * as fs from 'node:fs';

/** What the agent knows of a process (ECS process.* plus user and container). */
export interface ProcessInfo {
  pid: number;
  name: string;
  ppid: number;
  executable?: string;
  args?: string[];
  workingDirectory?: string;
  /** ECS process.start, from /proc/PID/stat's starttime. */
  start?: string;
  userId: number;
  userName?: string;
  containerId?: string;
  /** false when /proc had nothing (process gone before it was read) */
  fromProc: boolean;
}

/** What the kernel event says of the task, always available. */
export interface TaskHint {
  pid: number;
  comm: string;
  ppid: number;
  uid: number;
}

export interface ProcessCacheOptions {
  procRoot?: string;
  /** How long a /proc read stays fresh (ms); exited processes are kept longer. */
  ttlMs?: number;
  /** How long an entry is kept after its last use (ms). */
  keepMs?: number;
  maxEntries?: number;
  now?: () => number;
}

const CONTAINER_ID = /(?:^|[/:-])([0-9a-f]{64})(?:\.scope)?$/;

/** Container id from /proc/PID/cgroup lines (docker, containerd, cri-o, podman). */
export function containerIdFromCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const path = line.slice(line.lastIndexOf(':') + 1);
    for (const part of path.split('/').reverse()) {
      const m = CONTAINER_ID.exec(part);
      if (m) return m[1];
    }
  }
  return undefined;
}

function nonEmpty(a: string[] | undefined): string[] | undefined {
  return a && a.length > 0 ? a : undefined;
}

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

const bootTimes = new Map<string, number>(); // per proc root
function bootTime(procRoot: string): number | undefined {
  if (!bootTimes.has(procRoot)) {
    const m = /^btime (\d+)/m.exec(readText(`${procRoot}/stat`) ?? '');
    if (m) bootTimes.set(procRoot, Number(m[1]) * 1000);
  }
  return bootTimes.get(procRoot);
}

const CLK_TCK = 100;
let users: Map<number, string> | undefined;
function userName(uid: number): string | undefined {
  if (!users) {
    users = new Map();
    for (const line of (readText('/etc/passwd') ?? '').split('\n')) {
      const f = line.split(':');
      if (f.length > 2) users.set(Number(f[2]), f[0]);
    }
  }
  return users.get(uid);
}

/** Read /proc/PID once; undefined when the process is gone. */
export function readProcess(pid: number, procRoot = '/proc'): ProcessInfo | undefined {
  const dir = `${procRoot}/${pid}`;
  const stat = readText(`${dir}/stat`);
  if (stat === undefined) return undefined;
  // pid (comm) state ppid ... ; comm may contain spaces and parentheses
  const close = stat.lastIndexOf(')');
  const name = stat.slice(stat.indexOf('(') + 1, close);
  const rest = stat.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  const status = readText(`${dir}/status`) ?? '';
  const uidMatch = /^Uid:\s+(\d+)/m.exec(status);
  const uid = uidMatch ? Number(uidMatch[1]) : 0;
  const cmdline = readText(`${dir}/cmdline`);
  const args = cmdline ? cmdline.split('\0').filter((s, i, a) => i < a.length - 1 || s !== '') : undefined;
  const boot = bootTime(procRoot);
  return {
    pid,
    name,
    ppid,
    executable: readLink(`${dir}/exe`)?.replace(/ \(deleted\)$/, ''),
    args: args && args.length > 0 ? args : undefined,
    workingDirectory: readLink(`${dir}/cwd`),
    start: boot !== undefined && Number.isFinite(startTicks) ? new Date(boot + (startTicks * 1000) / CLK_TCK).toISOString() : undefined,
    userId: uid,
    userName: userName(uid),
    containerId: containerIdFromCgroup(readText(`${dir}/cgroup`) ?? ''),
    fromProc: true,
  };
}

/** What the kernel said at exec time (path and argv, possibly cut). */
export interface ExecInfo {
  pid: number;
  /** The task's comm right after the exec (guards against a reused pid). */
  comm: string;
  executable: string;
  args: string[];
}

/** Decode an EXEC event's payload: path (NUL-terminated, `filenameBytes` long), then argv. */
export function parseExecPayload(pid: number, comm: string, payload: Buffer, filenameBytes: number): ExecInfo {
  const nul = payload.indexOf(0);
  const executable = payload.toString('utf8', 0, nul >= 0 && nul < filenameBytes ? nul : Math.min(filenameBytes, payload.length));
  const argv = payload.subarray(Math.min(filenameBytes, payload.length));
  const args = argv.length > 0 ? argv.toString('utf8').split('\0') : [];
  if (args.length > 0 && args[args.length - 1] === '') args.pop();
  return { pid, comm, executable, args };
}

export interface ProcessCache {
  /** A process executed a program: remembered for when /proc is already gone. */
  noteExec?(exec: ExecInfo): void;
  /** Info for the task; reads /proc when unknown, stale, or the comm changed (exec). */
  lookup(hint: TaskHint): ProcessInfo;
  size(): number;
  /** Forget entries not used for keepMs. */
  sweep(): void;
}

export function createProcessCache({
  procRoot = '/proc',
  ttlMs = 30_000,
  keepMs = 10 * 60_000,
  maxEntries = 65_536,
  now = Date.now,
}: ProcessCacheOptions = {}): ProcessCache {
  // keyed by pid and the task's comm: an exec (new comm) or a reused pid reads /proc again
  const entries = new Map<string, { info: ProcessInfo; readAt: number; usedAt: number }>();
  const execs = new Map<number, ExecInfo>();
  return {
    noteExec(exec) {
      execs.delete(exec.pid);
      if (execs.size >= maxEntries) {
        const oldest = execs.keys().next();
        if (!oldest.done) execs.delete(oldest.value);
      }
      execs.set(exec.pid, exec);
    },
    lookup(hint) {
      const t = now();
      const key = `${hint.pid}/${hint.comm}`;
      const cached = entries.get(key);
      if (cached && (t - cached.readAt < ttlMs || !cached.info.fromProc)) {
        cached.usedAt = t;
        return cached.info;
      }
      const recorded = execs.get(hint.pid);
      const exec = recorded?.comm === hint.comm ? recorded : undefined;
      const read = readProcess(hint.pid, procRoot);
      // a zombie still has /proc/PID/stat but no exe or cmdline: the exec event fills them
      const info: ProcessInfo | undefined = read
        ? { ...read, executable: read.executable ?? exec?.executable, args: read.args ?? nonEmpty(exec?.args) }
        : cached?.info; // exited: keep what we knew
      const known = info ?? {
        // never seen in /proc: what the kernel said
        pid: hint.pid,
        name: hint.comm,
        ppid: hint.ppid,
        executable: exec?.executable,
        args: nonEmpty(exec?.args),
        userId: hint.uid,
        userName: userName(hint.uid),
        fromProc: false,
      };
      if (!cached && entries.size >= maxEntries) {
        const oldest = entries.keys().next();
        if (!oldest.done) entries.delete(oldest.value);
      }
      entries.set(key, { info: known, readAt: t, usedAt: t });
      return known;
    },
    size: () => entries.size,
    sweep() {
      const t = now();
      for (const [key, e] of entries) if (t - e.usedAt > keepMs) entries.delete(key);
    },
  };
}
