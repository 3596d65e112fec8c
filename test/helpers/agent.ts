import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const REPO = path.resolve(__dirname, '../../..');
export const BIN = path.join(REPO, 'bin/packetbeat-ebpf');

export interface AgentRun {
  child: ChildProcess;
  docs: Array<Record<string, any>>;
  stderr: string[];
  /** Resolves with the exit code / signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Wait until `pred` holds for the documents seen so far. */
  waitFor(pred: (docs: Array<Record<string, any>>) => boolean, timeoutMs?: number): Promise<void>;
}

/** Start `packetbeat-ebpf run` with a config file; resolves once it is capturing. */
export async function startAgent(config: Record<string, unknown>, args: string[] = []): Promise<AgentRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-agent-'));
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(cfg, JSON.stringify(config)); // JSON is YAML
  const child = spawn(process.execPath, [BIN, 'run', '-c', cfg, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const docs: Array<Record<string, any>> = [];
  const stderr: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => docs.push(JSON.parse(l)));
  const ready = new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: child.stderr! }).on('line', (l) => {
      stderr.push(l);
      if (l.includes('"capturing"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`agent exited (${code}) before capturing:\n${stderr.join('\n')}`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  await ready;
  return {
    child,
    docs,
    stderr,
    exited,
    async waitFor(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(docs)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for documents; have ${docs.length}:\n${docs.map((d) => d.query).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Once the agent exits: a clean exit (asserted), and the stats of its last line ('stopping'). */
export async function stoppedStats(agent: AgentRun): Promise<Record<string, any> | undefined> {
  const exit = await agent.exited;
  assert.equal(exit.code, 0, `agent exit: ${JSON.stringify(exit)}\n${agent.stderr.join('\n')}`);
  return agent.stderr.map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.msg === 'stopping')?.stats;
}

/** SIGINT, a clean exit, and the stats of the agent's 'stopping' line. */
export async function stopAgent(agent: AgentRun): Promise<Record<string, any> | undefined> {
  agent.child.kill('SIGINT');
  return stoppedStats(agent);
}

/** Ids of this project's BPF programs still loaded (bpftool prog list). */
export function loadedPrograms(): string[] {
  const out = execFileSync('bpftool', ['prog', 'list', '--json'], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ id: number; name?: string }>)
    .filter((p) => p.name !== undefined && /^handle_/.test(p.name))
    .map((p) => `${p.id}:${p.name}`);
}

/** Poll until none of our programs is loaded (the kernel frees them asynchronously). */
export async function waitNoPrograms(timeoutMs = 5000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = loadedPrograms();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = loadedPrograms();
  }
  return left;
}

export interface CapabilityProbe {
  ok: boolean;
  reason: string;
}

/** `packetbeat-ebpf check --json` (it attaches every hook set: seconds), once per boot and build. */
export function checkReport(): { mode?: string; hooks?: string; reason: string; features: Array<{ name: string; available: boolean; detail: string }> } {
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const addon = fs.statSync(path.join(REPO, 'addon/build/Release/pbe_capture.node')).mtimeMs;
  const cache = path.join(os.tmpdir(), `pbe-check-${process.getuid?.()}-${boot}-${Math.round(addon)}.json`);
  try {
    return JSON.parse(fs.readFileSync(cache, 'utf8'));
  } catch {
    const out = execFileSync(process.execPath, [BIN, 'check', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    fs.writeFileSync(cache, out);
    return JSON.parse(out);
  }
}

/** Can this machine run the kernel tests? A real attach of the capture, not the uid. */
export function kernelCapture(): CapabilityProbe {
  try {
    const r = checkReport();
    return { ok: r.mode === 'syscall' || r.mode === 'kprobe', reason: r.reason };
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    return { ok: false, reason: (e.stdout || e.message).trim().split('\n').pop() ?? e.message };
  }
}

/** Skip reason for kernel tests, or false to run them. Under CI a skip is a failure. */
export function kernelSkip(): string | false {
  const probe = kernelCapture();
  if (probe.ok) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true but the kernel tests cannot run here: ${probe.reason}`);
  return `needs root and a kernel the capture attaches to: ${probe.reason}`;
}
