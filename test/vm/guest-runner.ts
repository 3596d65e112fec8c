// Runs inside the test VM (started by /init): `packetbeat-ebpf check`, then nginx
// and redis-server, then every run of the matrix against the same traffic from
// curl and redis-cli. Prints everything on the console (console-log.ts) for the
// host to assert; the host decides what passes.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { formatLine, type ClientResult } from './console-log';
import {
  AGENT_CONFIG,
  CHECK,
  EXPECTED_DOCUMENTS,
  HTTP_CASES,
  HTTP_PORT,
  REDIS_CASES,
  REDIS_PORT,
  selectRuns,
  type VmRun,
} from './matrix';

const AGENT_BIN = path.resolve(__dirname, '../../../bin/packetbeat-ebpf');
const WORK = '/tmp/pbe-vm';
const CHECK_TIMEOUT_MS = 60_000;
const SERVER_START_TIMEOUT_MS = 30_000;
const AGENT_START_TIMEOUT_MS = 90_000;
const CLIENT_TIMEOUT_MS = 20_000;
const DOCUMENTS_TIMEOUT_MS = 30_000;
// after the last expected document: time for a stray extra one to show up
const SETTLE_MS = 1000;
const AGENT_EXIT_TIMEOUT_MS = 20_000;
// the kernel frees a closed program asynchronously
const PROGRAMS_GONE_TIMEOUT_MS = 5000;

function emit(tag: string, run: string, payload: unknown = ''): void {
  process.stdout.write(formatLine(tag, run, payload));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve with the exit of a child, or kill it after timeoutMs. */
function exited(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** Run a program to its end (bounded); its pid, exit code and output. */
async function runProgram(cmd: string, args: readonly string[], timeoutMs: number) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const end = await Promise.race([exited(child, timeoutMs), spawnError.then((e) => ({ code: null, signal: `spawn: ${e.message}` }))]);
  return { pid: child.pid ?? -1, exit: end.code, signal: end.signal, stdout, stderr };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** nginx (single process) serving /hello, and redis-server; both on loopback. */
async function startServers(): Promise<{ nginx: ChildProcess; redis: ChildProcess }> {
  const dir = path.join(WORK, 'nginx');
  fs.mkdirSync(path.join(dir, 'www'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'www/hello'), 'hello from the vm\n');
  const temp = ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t === 'body' ? 'client_body' : t}_temp_path ${dir}/${t};`);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log;`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      ...temp,
      `  server { listen 127.0.0.1:${HTTP_PORT}; root ${dir}/www; default_type text/plain; }`,
      '}',
      '',
    ].join('\n'),
  );
  const nginx = spawn('nginx', ['-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const redisDir = path.join(WORK, 'redis');
  fs.mkdirSync(redisDir, { recursive: true });
  const redis = spawn(
    'redis-server',
    ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    await waitForPort(HTTP_PORT, SERVER_START_TIMEOUT_MS);
    await waitForPort(REDIS_PORT, SERVER_START_TIMEOUT_MS);
  } catch (err) {
    const log = fs.existsSync(`${dir}/error.log`) ? fs.readFileSync(`${dir}/error.log`, 'utf8') : '';
    throw new Error(`${(err as Error).message}\nnginx error.log: ${log}`);
  }
  return { nginx, redis };
}

/** The clients of one run: one curl per HTTP case, one redis-cli per Redis command. */
async function generateTraffic(): Promise<ClientResult[]> {
  const results: ClientResult[] = [];
  for (const c of HTTP_CASES) {
    const args = ['-s', '-w', '%{http_code}\\n', '--max-time', '15'];
    // a text/plain body: a form body would come out as url.query
    if (c.method === 'POST') args.push('-H', 'content-type: text/plain', '--data-binary', 'vm');
    for (const p of c.paths) args.push('-o', '/dev/null', `http://127.0.0.1:${HTTP_PORT}${p}`);
    const r = await runProgram('curl', args, CLIENT_TIMEOUT_MS);
    results.push({ id: `http-${c.id}`, pid: r.pid, exit: r.exit, output: (r.stdout + r.stderr).trim() });
  }
  for (const c of REDIS_CASES) {
    const r = await runProgram('redis-cli', ['-p', String(REDIS_PORT), ...c.command], CLIENT_TIMEOUT_MS);
    results.push({ id: `redis-${c.id}`, pid: r.pid, exit: r.exit, output: (r.stdout + r.stderr).trim() });
  }
  return results;
}

/** One agent run: start it, drive the traffic, wait for the documents, stop it with SIGINT. */
async function agentRun(run: VmRun): Promise<void> {
  const config = path.join(WORK, `agent-${run.name}.json`);
  fs.writeFileSync(config, JSON.stringify(AGENT_CONFIG)); // JSON is YAML
  const args = [AGENT_BIN, 'run', '-c', config, ...run.args];
  emit('begin', run.name, { args: args.slice(1) });
  const t0 = Date.now();
  const agent = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let docs = 0;
  readline.createInterface({ input: agent.stdout! }).on('line', (l) => {
    docs += 1;
    emit('doc', run.name, l);
  });
  const capturing = new Promise<boolean>((resolve) => {
    readline.createInterface({ input: agent.stderr! }).on('line', (l) => {
      emit('stderr', run.name, l);
      if (l.includes('"capturing"')) resolve(true);
    });
    agent.once('exit', () => resolve(false));
    setTimeout(() => resolve(false), AGENT_START_TIMEOUT_MS).unref();
  });
  let capturingMs: number | undefined;
  if (await capturing) {
    capturingMs = Date.now() - t0;
    for (const c of await generateTraffic()) emit('client', run.name, c);
    const deadline = Date.now() + DOCUMENTS_TIMEOUT_MS;
    while (docs < EXPECTED_DOCUMENTS && Date.now() < deadline && agent.exitCode === null) await sleep(100);
    await sleep(SETTLE_MS);
  }
  agent.kill('SIGINT');
  const end = await exited(agent, AGENT_EXIT_TIMEOUT_MS);
  emit('end', run.name, { exit: end.code, signal: end.signal, elapsedMs: Date.now() - t0, capturingMs });
  emit('programs', run.name, await programsLeft());
}

/** BPF programs loaded in the guest, as id:name (bpftool). */
async function loadedPrograms(): Promise<string[]> {
  const r = await runProgram('bpftool', ['prog', 'show', '--json'], CLIENT_TIMEOUT_MS);
  if (r.exit !== 0) throw new Error(`bpftool prog show failed (${r.exit}): ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as Array<{ id: number; name?: string }>).map((p) => `${p.id}:${p.name ?? ''}`);
}

// programs the kernel loaded itself before any run (e.g. bpf_preload's iterators)
let baseline = new Set<string>();

/** Programs loaded since the baseline: polled until there are none, or for a bounded time. */
async function programsLeft(): Promise<string[]> {
  const deadline = Date.now() + PROGRAMS_GONE_TIMEOUT_MS;
  for (;;) {
    const left = (await loadedPrograms()).filter((p) => !baseline.has(p));
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(200);
  }
}

async function main(): Promise<void> {
  const uptimeS = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  // how long a bare Node takes to start here: the floor under every agent start below
  let t0 = Date.now();
  await runProgram(process.execPath, ['-e', '0'], CHECK_TIMEOUT_MS);
  emit('start', '-', { release: os.release(), uptimeS, nodeStartMs: Date.now() - t0 });
  fs.mkdirSync(WORK, { recursive: true });
  baseline = new Set(await loadedPrograms());
  t0 = Date.now();
  const check = await runProgram(process.execPath, [AGENT_BIN, ...CHECK.args], CHECK_TIMEOUT_MS);
  emit('check', '-', { args: CHECK.args, exit: check.exit, stdout: check.stdout, stderr: check.stderr, elapsedMs: Date.now() - t0 });
  t0 = Date.now();
  const servers = await startServers();
  emit('servers', '-', { nginx: servers.nginx.pid, redis: servers.redis.pid, elapsedMs: Date.now() - t0, programsBefore: [...baseline] });
  for (const run of selectRuns(fs.readFileSync('/proc/cmdline', 'utf8'))) await agentRun(run);
  servers.nginx.kill('SIGTERM');
  servers.redis.kill('SIGTERM');
  await Promise.all([exited(servers.nginx, 5000), exited(servers.redis, 5000)]);
  emit('done', '-');
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    emit('error', '-', (err.stack ?? String(err)).replace(/\n/g, ' | '));
    process.exit(1);
  },
);
