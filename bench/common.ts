/** What every benchmark here needs: arguments, process accounting, the agent and the floor, statistics. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const REPO = path.resolve(__dirname, '../..');

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

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

/** The capture floor (bench/floor/floor.c) around `load`. */
export async function withFloor<T>(ports: number[], seconds: number, load: () => T): Promise<T> {
  const floor = spawn(path.join(REPO, 'bench/floor/floor'), [ports.join(','), String(seconds + 30)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitLine(floor, 'stdout', (l) => l === 'ready');
  try {
    return load();
  } finally {
    const exited = new Promise((r) => floor.once('exit', r));
    floor.kill('SIGINT');
    await exited;
  }
}

export interface AgentRun<T> {
  result: T;
  /** Documents the agent wrote (NDJSON lines). */
  docs: Array<Record<string, any>>;
  cpuSeconds: number;
  rssMiB: number;
  /** The agent's last stats line. */
  stats: Record<string, any>;
}

/** The agent (documents to a file) around `load`; its CPU counted from start of load to 1 s after. */
export async function withAgent<T>(args: string[], dir: string, load: () => T): Promise<AgentRun<T>> {
  const docsFile = path.join(dir, 'docs.ndjson');
  const fd = fs.openSync(docsFile, 'w');
  const child = spawn(process.execPath, [path.join(REPO, 'bin/packetbeat-ebpf'), 'run', '--stats-interval', '0', ...args], {
    stdio: ['ignore', fd, 'pipe'],
  });
  fs.closeSync(fd);
  let stats: Record<string, any> = {};
  const stderr = readline.createInterface({ input: child.stderr! });
  await new Promise<void>((resolve) =>
    stderr.on('line', (l) => {
      if (l.includes('"capturing"')) resolve();
      if (l.includes('"stopping"')) stats = JSON.parse(l).stats;
    }),
  );
  const cpu0 = cpuSeconds(child.pid!);
  const result = load();
  const rss = rssMiB(child.pid!);
  await new Promise((r) => setTimeout(r, 1000)); // let the agent finish what was captured
  const cpu = cpuSeconds(child.pid!) - cpu0;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
  const docs = fs
    .readFileSync(docsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
  fs.rmSync(docsFile);
  return { result, docs, cpuSeconds: cpu, rssMiB: rss, stats };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const spread = (xs: number[]): number[] => [Math.min(...xs), Math.max(...xs)];
export const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** median [min, max] of per-round values, rounded */
export function summarize(xs: number[]): { median: number; spread: number[] } {
  return { median: r3(median(xs)), spread: spread(xs).map(r3) };
}

export function writeResult(name: string, summary: object): string {
  const out = path.join(REPO, 'bench/results', `${name}-${new Date().toISOString().slice(0, 10)}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  return out;
}

/** Write the result file, print its summary (without the per-round detail), say where it went. */
export function report(name: string, summary: Record<string, unknown>): void {
  const out = writeResult(name, summary);
  const { rounds: _omit, ...short } = summary;
  process.stdout.write(JSON.stringify(short, null, 2) + '\n');
  process.stderr.write(`written to ${out}\n`);
}

/** Run a benchmark's main; a failure prints its stack and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
