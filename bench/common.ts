/** What every benchmark here needs: arguments, process accounting, the agent and the floor, statistics. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const REPO = path.resolve(__dirname, '../..');

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} wants a number, got ${process.argv[i + 1]}`);
  return v;
}

/** A whole-number option of at least `min` (`why`: what the reader should know of that bound). */
export function wholeArg(name: string, fallback: number, min: number, why = ''): number {
  const v = arg(name, fallback);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} wants a whole number of at least ${min}${why}`);
  return v;
}

/** A string option's value (`--name value`), or undefined when it is not given. */
export function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** A list option (`--name "a b c"`), split at spaces: [] when it is not given. */
export function listArg(name: string): string[] {
  return (stringArg(name) ?? '').split(' ').filter((a) => a !== '');
}

/** A string option, one of `choices`. */
export function choiceArg<C extends string>(name: string, choices: readonly C[], fallback: C): C {
  const v = stringArg(name) as C | undefined;
  if (v === undefined) return fallback;
  if (!choices.includes(v)) throw new Error(`--${name} wants one of ${choices.join(', ')}, got ${v}`);
  return v;
}

/** `--no-write`: print the summary, write no file under bench/results (for short validation runs). */
export const NO_WRITE = process.argv.includes('--no-write');

/** Fail clearly when a tool the benchmark drives is not installed, or when another tracer runs (requireNoOtherTracer). */
export function requireTools(tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) {
    throw new Error(`missing ${missing.map(([t]) => t).join(', ')}: apt-get install ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`);
  }
  requireNoOtherTracer();
}

/** Agents (`packetbeat-ebpf run`) and capture floors running now, other than this process: pid and command line. */
export function otherTracers(): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    const agent = argv.some((a) => a.endsWith('packetbeat-ebpf')) && argv.includes('run');
    const floor = argv.length > 0 && argv[0].endsWith('bench/floor/floor');
    if (agent || floor) found.push({ pid: Number(entry), command: argv.join(' ') });
  }
  return found;
}

/**
 * Fail when another agent or capture floor runs: its hooks would fire on this
 * benchmark's traffic too (on the same ports, every request traced twice) and
 * its CPU would be taken from the measured processes. Seen 2026-12-07: agents
 * left running by an interrupted script, tracing the port of the benchmark's nginx.
 */
export function requireNoOtherTracer(): void {
  const others = otherTracers();
  if (others.length === 0) return;
  const list = others.map((o) => `  ${o.pid}: ${o.command.length > 160 ? o.command.slice(0, 160) + '…' : o.command}`).join('\n');
  throw new Error(`another tracer is running; it would skew every figure of this benchmark. Stop it first (kill -INT PID):\n${list}`);
}

/** The machine a result was measured on. */
export function machine(): Record<string, unknown> {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release(), node: process.version };
}

export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** One field of /proc/PID/status in MiB (VmRSS, VmHWM, RssAnon, ...). */
export function statusMiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export const rssMiB = (pid: number): number => statusMiB(pid, 'VmRSS');

export async function waitLine(child: ChildProcess, stream: 'stdout' | 'stderr', pred: (l: string) => boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const rl = readline.createInterface({ input: child[stream]! });
    rl.on('line', (l) => {
      if (pred(l)) {
        rl.removeAllListeners('line');
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before ready`)));
  });
}

const FLOOR = path.join(REPO, 'bench/floor/floor');
export const sleep = (ms: number): Promise<unknown> => new Promise((r) => setTimeout(r, ms));

/**
 * The capture floor (bench/floor/floor.c) around `load`; `floorArgs` are its
 * options (--interval-ms, --spin-us, --slice-us, --sched-idle: see floor.c).
 */
export async function withFloor<T>(
  ports: number[],
  seconds: number,
  load: (floor: { pid: number }) => T | Promise<T>,
  floorArgs: readonly string[] = [],
): Promise<Awaited<T>> {
  if (!fs.existsSync(FLOOR)) throw new Error(`${FLOOR} is not built: make -C bench/floor`);
  const floor = spawn(FLOOR, [ports.join(','), String(seconds + 30), ...floorArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitLine(floor, 'stdout', (l) => l === 'ready');
  try {
    return await load({ pid: floor.pid! });
  } finally {
    const exited = new Promise((r) => floor.once('exit', r));
    floor.kill('SIGINT');
    await exited;
  }
}

/** What a load run under the agent may look at. */
export interface AgentHandle {
  pid: number;
}

export interface AgentOptions {
  /** Seconds between the agent's stats lines (0: only the last one, at exit). */
  statsIntervalS?: number;
  /** Each periodic stats line of the agent. */
  onStats?: (stats: Record<string, any>) => void;
  /** Each document, read back from the file after the load; the documents are then not kept (large runs). */
  onDoc?: (doc: Record<string, any>) => void;
  /**
   * Load run before the measured one and not counted: the agent measured is a
   * running agent (its code compiled by V8), not one starting. Its documents
   * (transactions started before the measured load) and its CPU are left out,
   * and reported apart (`warmup`).
   */
  warmup?: () => unknown;
  /**
   * Run `warmup` again while the agent is still at normal priority after it
   * (sched_idle auto draining a burst on its budget), for up to this many seconds
   * of warm-up in all: the measured load then finds an agent whose burst is spent,
   * the regime of a host that stays saturated. 0: `warmup` runs once.
   */
  spendBurstS?: number;
}

export interface WarmupFigures {
  /** Documents of transactions that started before the measured load. */
  documents: number;
  /** How often `warmup` ran, and for how long in all. */
  runs: number;
  seconds: number;
  /** sched_idle auto's policy when the measured load began ('idle': no burst being drained; null: not under auto). */
  policyAtStart: string | null;
  cpuSeconds: number;
  /** The agent's stats line between the warm-up and the measured load (its counters then). */
  stats: Record<string, any>;
}

export interface AgentRun<T> {
  result: T;
  /** Documents the agent wrote (NDJSON lines); empty when they went to `onDoc`. */
  docs: Array<Record<string, any>>;
  cpuSeconds: number;
  /** Resident memory right after the load, and its peak over the agent's life (VmHWM). */
  rssMiB: number;
  rssPeakMiB: number;
  /**
   * The agent's last stats line; after a warm-up, its counters (events, kernel
   * counters, ...) count the measured load only (those of the stats line taken
   * between the two subtracted: see `warmup.stats` for the warm-up's).
   */
  stats: Record<string, any>;
  /** Wall seconds `stats` cover: from capturing (or the stats line after the warm-up) to the end. */
  statsSeconds: number;
  warmup?: WarmupFigures;
}

/**
 * Pause between the warm-up load and the measured one, and the agent's stats
 * interval then (its counters are read from the next stats line after the pause):
 * short, so the measured load follows the warm-up with no lull. At saturation an
 * agent still behind (its ring buffer full, the kernel dropping) is the regime
 * measured; in a lull it catches up, and sched_idle auto may raise it again (the
 * saturation was over). Until 2026-12-07's fifth run: 500 ms and a stats line a
 * second, a lull of 0.5-1.5 s; waiting until the agent was idle (tried that day)
 * measured a fresh burst after a quiet spell, its budget refilled meanwhile.
 */
const WARMUP_SETTLE_MS = 100;
const WARMUP_STATS_INTERVAL_S = 0.1;
/** The stats line's fields that count up from the agent's start (the others are rates and levels). */
const STATS_COUNTERS = [
  'events',
  'bytes_captured',
  'bytes_moved',
  'transactions',
  'joined',
  'unmatched',
  'parse_errors',
  'internal_errors',
  'inferred',
  'shadowed',
  'infer_ignored',
  'dropped_by_processors',
  'gap_bytes',
  'capture_pauses',
];

/** The counters of stats line `end` minus those of `start` (numbers at the top level and in `kernel`); the rest as in `end`. */
export function countersSince(end: Record<string, any>, start: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...end };
  for (const k of STATS_COUNTERS) if (typeof end[k] === 'number' && typeof start[k] === 'number') out[k] = end[k] - start[k];
  if (end.kernel && start.kernel) out.kernel = Object.fromEntries(Object.entries(end.kernel as Record<string, number>).map(([k, v]) => [k, v - (start.kernel[k] ?? 0)]));
  // sched_idle auto's boosts and time at normal priority are counters too; its policy is the end's
  if (end.sched && start.sched) out.sched = { ...end.sched, boosts: end.sched.boosts - start.sched.boosts, normal_ms: end.sched.normal_ms - start.sched.normal_ms };
  return out;
}

/** sched_idle auto's figures over a measured run: boosts to normal priority, ms spent there, the policy at the stop. */
export interface SchedFigures {
  boosts: number;
  normal_ms: number;
  policy: string;
}

/** The sched figures of an agent's stats (null when it ran without sched_idle auto). */
export function schedOf(stats: Record<string, any>): SchedFigures | null {
  const s = stats.sched as Record<string, unknown> | undefined;
  if (!s || typeof s.boosts !== 'number' || typeof s.normal_ms !== 'number') return null;
  return { boosts: s.boosts, normal_ms: s.normal_ms, policy: String(s.policy) };
}

/** Per round: how often sched_idle auto raised the agent to normal priority, and for how long (null: not under auto). */
export function schedSummary(rounds: Array<SchedFigures | null>): { boosts: Array<number | null>; normal_ms: Array<number | null> } {
  return { boosts: rounds.map((r) => r?.boosts ?? null), normal_ms: rounds.map((r) => (r ? Math.round(r.normal_ms) : null)) };
}

/** How long a round's warm-up ran (seconds, how often) and sched_idle auto's policy when the measured load began. */
export interface WarmupRuns {
  seconds: number;
  runs: number;
  policy_at_start: string | null;
}

export function warmupOf(run: { warmup?: WarmupFigures }): WarmupRuns | null {
  const w = run.warmup;
  return w ? { seconds: r3(w.seconds), runs: w.runs, policy_at_start: w.policyAtStart } : null;
}

/**
 * Default of `--spend-burst S` (http, redis, pgsql): warm-ups repeated while sched_idle
 * auto drains a burst at normal priority, up to S seconds (0: one warm-up).
 */
export const SPEND_BURST_DEFAULT_S = 30;

/** When a document's transaction started (ms since the epoch). */
function docStartMs(doc: Record<string, any>): number {
  return Date.parse(doc.event?.start ?? doc['@timestamp']);
}

/** The agent (documents to a file, read after the load) around `load` (after `warmup`); its CPU counted from start of load to 1 s after. */
export async function withAgent<T>(
  args: string[],
  dir: string,
  load: (agent: AgentHandle) => T | Promise<T>,
  { statsIntervalS = 0, onStats, onDoc, warmup, spendBurstS = 0 }: AgentOptions = {},
): Promise<AgentRun<Awaited<T>>> {
  const docsFile = path.join(dir, 'docs.ndjson');
  const out = fs.openSync(docsFile, 'w');
  // after a warm-up the counters are read from a stats line between it and the load
  const interval = warmup && statsIntervalS === 0 ? WARMUP_STATS_INTERVAL_S : statsIntervalS;
  let nextStats: ((stats: Record<string, any>) => void) | undefined;
  const child = spawn(process.execPath, [path.join(REPO, 'bin/packetbeat-ebpf'), 'run', '--stats-interval', String(interval), ...args], {
    stdio: ['ignore', out, 'pipe'],
  });
  fs.closeSync(out);
  // 'close': the process exited and every line of its output was read
  const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  let stats: Record<string, any> = {};
  const lastLines: string[] = [];
  const capturing = new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: child.stderr! }).on('line', (l) => {
      lastLines.push(l);
      if (lastLines.length > 5) lastLines.shift();
      let line: Record<string, any>;
      try {
        line = JSON.parse(l);
      } catch {
        return;
      }
      if (line.msg === 'capturing') resolve();
      else if (line.msg === 'stats') {
        nextStats?.(line.stats);
        onStats?.(line.stats);
      }
      else if (line.msg === 'stopping') stats = line.stats;
    });
    void closed.then((code) => reject(new Error(`the agent exited (${code}) before capturing:\n${lastLines.join('\n')}`)));
  });
  await capturing;
  let statsFrom = Date.now();
  const pid = child.pid!;
  let cpu0 = cpuSeconds(pid);
  let measuredFrom = -Infinity;
  let warmupCpu = 0;
  let baseline: Record<string, any> | undefined;
  let warmupRuns = 0;
  let warmupSeconds = 0;
  let result: Awaited<T>;
  try {
    if (warmup) {
      const warmFrom = Date.now();
      for (;;) {
        await warmup();
        warmupRuns++;
        // the boundary halfway through the pause, not at its end: the agent's times
        // are kernel clock readings mapped to the wall clock once, at its start
        measuredFrom = Date.now() + WARMUP_SETTLE_MS / 2;
        await sleep(WARMUP_SETTLE_MS);
        // its counters now (no load runs until the next stats line is read)
        baseline = await Promise.race([
          new Promise<Record<string, any>>((resolve) => (nextStats = resolve)),
          closed.then((code): never => {
            throw new Error(`the agent exited (${code}) after the warm-up:\n${lastLines.join('\n')}`);
          }),
        ]);
        if (baseline.sched?.policy !== 'normal' || Date.now() - warmFrom >= spendBurstS * 1000) break;
      }
      warmupSeconds = (Date.now() - warmFrom) / 1000;
      nextStats = undefined;
      statsFrom = Date.now();
      const cpu = cpuSeconds(pid);
      warmupCpu = cpu - cpu0;
      cpu0 = cpu;
    }
    result = await load({ pid });
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the agent exited (${child.exitCode ?? child.signalCode}) during the load:\n${lastLines.join('\n')}`);
  } catch (err) {
    child.kill('SIGINT');
    await closed;
    throw err;
  }
  const rss = rssMiB(pid);
  await sleep(1000); // let the agent finish what was captured
  const cpu = cpuSeconds(pid) - cpu0;
  const rssPeak = statusMiB(pid, 'VmHWM');
  child.kill('SIGINT');
  await closed;
  const statsSeconds = (Date.now() - statsFrom) / 1000;
  const docs: Array<Record<string, any>> = [];
  let warmupDocs = 0;
  for await (const l of readline.createInterface({ input: fs.createReadStream(docsFile), crlfDelay: Infinity })) {
    if (!l) continue;
    const doc = JSON.parse(l) as Record<string, any>;
    if (docStartMs(doc) < measuredFrom) warmupDocs++;
    else if (onDoc) onDoc(doc);
    else docs.push(doc);
  }
  fs.rmSync(docsFile);
  const policyAtStart = baseline?.sched ? String(baseline.sched.policy) : null;
  const warmupFigures = baseline ? { documents: warmupDocs, runs: warmupRuns, seconds: warmupSeconds, policyAtStart, cpuSeconds: warmupCpu, stats: baseline } : undefined;
  const measured = baseline ? countersSince(stats, baseline) : stats;
  return { result, docs, cpuSeconds: cpu, rssMiB: rss, rssPeakMiB: rssPeak, stats: measured, statsSeconds, warmup: warmupFigures };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const spread = (xs: number[]): number[] => [Math.min(...xs), Math.max(...xs)];
export const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** median [min, max] of per-round values, rounded */
export interface Summary {
  median: number;
  spread: number[];
}

export function summarize(xs: number[]): Summary {
  return { median: r3(median(xs)), spread: spread(xs).map(r3) };
}

/** Geometric mean of the ratios and a 95% bootstrap interval of it (seeded: the same pairs, the same interval). */
export function ratioInterval(ratios: number[], draws = 4000): { geomean: number; low: number; high: number } {
  const logs = ratios.map(Math.log);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  let seed = 0x9e3779b9;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const means: number[] = [];
  for (let d = 0; d < draws; d++) {
    let sum = 0;
    for (let i = 0; i < logs.length; i++) sum += logs[Math.floor(random() * logs.length)];
    means.push(sum / logs.length);
  }
  means.sort((a, b) => a - b);
  return { geomean: r3(Math.exp(mean(logs))), low: r3(Math.exp(means[Math.floor(draws * 0.025)])), high: r3(Math.exp(means[Math.ceil(draws * 0.975) - 1])) };
}

/** A build to compare (a checkout), checked: each of `files` (relative to it) must be there, else `hint` says how to make them. */
function buildDir(dir: string, option: string, files: readonly string[], hint: string): string {
  const root = path.resolve(dir);
  const missing = files.filter((f) => !fs.existsSync(path.join(root, f)));
  if (missing.length > 0) throw new Error(`${option} ${root} has no ${missing.join(' or ')}: ${hint}`);
  return root;
}

/**
 * The two builds to compare: `--before DIR` (required) and `--after DIR` (this
 * checkout by default), each checked by buildDir; `what` says what a build is.
 */
export function comparedBuilds(what: string, files: readonly string[], hint: string): { before: string; after: string } {
  const before = stringArg('before');
  if (!before) throw new Error(`--before DIR: the build to compare with (${what})`);
  return { before: buildDir(before, '--before', files, hint), after: buildDir(stringArg('after') ?? REPO, '--after', files, hint) };
}

/**
 * `pairs` measurements of two builds, alternating which goes first (the machine
 * drifts); `describe` prints each pair as it is done. Returns each build's figures in order.
 */
export async function alternatePairs<T>(
  pairs: number,
  measure: (which: 'before' | 'after') => T | Promise<T>,
  describe: (before: T, after: T, i: number) => string,
): Promise<{ before: T[]; after: T[] }> {
  const before: T[] = [];
  const after: T[] = [];
  for (let i = 0; i < pairs; i++) {
    if (i % 2 === 0) {
      before.push(await measure('before'));
      after.push(await measure('after'));
    } else {
      after.push(await measure('after'));
      before.push(await measure('before'));
    }
    process.stderr.write(`pair ${i + 1}/${pairs}: ${describe(before[i], after[i], i)}\n`);
  }
  return { before, after };
}

export function writeResult(name: string, summary: object): string {
  const out = path.join(REPO, 'bench/results', `${name}-${new Date().toISOString().slice(0, 10)}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  return out;
}

/** Write the result file (unless --no-write), print its summary (without the per-round detail: `detail` keys), say where it went. */
export function report(name: string, summary: Record<string, unknown>, detail: string[] = ['rounds']): void {
  const short = Object.fromEntries(Object.entries(summary).filter(([k]) => !detail.includes(k)));
  process.stdout.write(JSON.stringify(short, null, 2) + '\n');
  if (NO_WRITE) process.stderr.write('--no-write: no result file written\n');
  else process.stderr.write(`written to ${writeResult(name, summary)}\n`);
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The hard limit on open files of this process (what a child may raise its own limit to). */
export function hardNofile(): number {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? NaN);
}

/** argv that runs `cmd` with its open-file limit raised to `nofile` (sh's ulimit, up to the hard limit). */
function withNofile(cmd: string, args: string[], nofile?: number): [string, string[]] {
  return nofile ? ['sh', ['-c', `ulimit -n ${nofile} && exec "$@"`, 'sh', cmd, ...args]] : [cmd, args];
}

export interface Nginx {
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** events.worker_connections; above ~1000 also give `nofile`. */
  workerConnections?: number;
  /** Open-file limit for nginx. */
  nofile?: number;
  /** listen backlog (the kernel caps it at net.core.somaxconn). */
  backlog?: number;
}

/** nginx (apt), one process, on 127.0.0.1:port, answering GET /hello with "hello\n" (keep-alive). */
export async function startNginx(dir: string, port: number, { workerConnections = 1024, nofile, backlog }: NginxOptions = {}): Promise<Nginx> {
  fs.mkdirSync(path.join(dir, 'www'), { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  const listen = `127.0.0.1:${port}${backlog ? ` backlog=${backlog}` : ''}`;
  fs.writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;${nofile ? ` worker_rlimit_nofile ${nofile};` : ''}
events { worker_connections ${workerConnections}; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path ${dir}/body;
  server { listen ${listen}; root ${dir}/www; location = /hello { default_type text/plain; return 200 "hello\\n"; } } }
`,
  );
  const [cmd, args] = withNofile('nginx', ['-c', conf, '-p', dir], nofile);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise((r) => child.once('close', r));
  await Promise.race([waitPort(port), exited.then(() => Promise.reject(new Error(`nginx exited: ${stderr}`)))]);
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface WrkOptions {
  port: number;
  connections: number;
  seconds: number;
  threads?: number;
  /** A Lua script (e.g. paceScript()). */
  script?: string;
  timeoutS?: number;
  /** Open-file limit for wrk (connections + a few). */
  nofile?: number;
}

export interface WrkResult {
  requests: number;
  rps: number;
  p50us: number;
  p99us: number;
  /** connect/read/write/timeout errors, and non-2xx/3xx answers; 0 when wrk printed none */
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
}

function wrkArgv({ port, connections, seconds, threads = 1, script, timeoutS, nofile }: WrkOptions): [string, string[]] {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency'];
  if (timeoutS) args.push('--timeout', `${timeoutS}s`);
  if (script) args.push('-s', script);
  return withNofile('wrk', [...args, `http://127.0.0.1:${port}/hello`], nofile);
}

function parseLatency(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1 : m[2] === 'ms' ? 1000 : 1e6);
}

function parseWrk(out: string): WrkResult {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(requests)) throw new Error(`wrk printed no request count:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50us: parseLatency(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99us: parseLatency(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    errors: {
      connect: Number(sock?.[1] ?? 0),
      read: Number(sock?.[2] ?? 0),
      write: Number(sock?.[3] ?? 0),
      timeout: Number(sock?.[4] ?? 0),
      status: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    },
  };
}

/** wrk against nginx's /hello (blocks until wrk's -d is over). */
export function wrk(options: WrkOptions): WrkResult {
  const [cmd, args] = wrkArgv(options);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed (${r.status ?? r.signal}): ${r.stderr}`);
  return parseWrk(r.stdout);
}

/** wrk without blocking the event loop (several at once, or sampling while it runs). */
export async function wrkAsync(options: WrkOptions): Promise<WrkResult> {
  const [cmd, args] = wrkArgv(options);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  if (code !== 0) throw new Error(`wrk failed (${code}): ${err}`);
  return parseWrk(out);
}

/** A wrk script that waits `delayMs` before each request of a connection: a fixed rate below saturation. */
export function paceScript(dir: string, delayMs: number, { jitter = false }: { jitter?: boolean } = {}): string {
  const file = path.join(dir, `pace-${delayMs}${jitter ? '-jitter' : ''}.lua`);
  // jitter: each delay drawn from 0..2×delayMs ms (the same mean), seeded: the
  // connections do not keep firing together, as they do with a fixed delay
  const body = jitter ? `math.randomseed(1)\nfunction delay()\n  return math.random(0, ${2 * delayMs})\nend\n` : `function delay()\n  return ${delayMs}\nend\n`;
  fs.writeFileSync(file, body);
  return file;
}

/** HTTP documents for GET /hello checked against what wrk sent. */
export interface HttpTally {
  /** answered GET /hello with 200 */
  transactions: number;
  /** anything else (another method, path or status): counted as missing, not as a transaction */
  wrong: number;
  /** GET /hello without a response: in flight when the load stopped */
  unanswered: number;
  /** a response whose request was lost (kernel drops): "Unmatched response", neither a transaction nor wrong */
  unmatched: number;
  /** the first few wrong documents, abridged */
  wrongSample: unknown[];
}

const WRONG_SAMPLE = 3;

export const newHttpTally = (): HttpTally => ({ transactions: 0, wrong: 0, unanswered: 0, unmatched: 0, wrongSample: [] });

export function countHttpDoc(t: HttpTally, d: Record<string, any>, urlPath = '/hello'): void {
  if (d.http?.response === undefined && d.method === 'GET' && d.url?.path === urlPath) {
    t.unanswered++;
    return;
  }
  if (d.method === 'GET' && d.url?.path === urlPath && d.http?.response?.status_code === 200) {
    t.transactions++;
    return;
  }
  if (d.type === 'http' && d.error?.message === 'Unmatched response') {
    t.unmatched++;
    return;
  }
  t.wrong++;
  if (t.wrongSample.length < WRONG_SAMPLE) {
    t.wrongSample.push({ type: d.type, method: d.method, url: d.url?.original, status_code: d.http?.response?.status_code, status: d.status, error: d.error, event: d.event, views: d.packetbeat_ebpf?.views });
  }
}

/** Run a benchmark's main; a failure prints its stack and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
