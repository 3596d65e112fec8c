/**
 * HTTP benchmark: nginx (apt) driven by wrk (keep-alive, tiny responses),
 * rounds alternating untraced / capture floor / full agent, on this machine.
 * Prints and writes (bench/results/http-<date>.json):
 *   - requests/s and p50/p99 latency per mode, ratios per round (median, spread)
 *   - completeness: agent transactions / wrk requests, with kernel drops beside
 *   - agent cost: CPU seconds per 10,000 transactions, events/s and MB/s drained, RSS
 * Every load is bounded (wrk -d), on loopback, and stops by itself.
 *   node dist/bench/http.js [--rounds N] [--seconds S] [--connections C]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

const REPO = path.resolve(__dirname, '../..');
const PORT = 18300;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const ROUNDS = arg('rounds', 5);
const SECONDS = arg('seconds', 5);
const CONNECTIONS = arg('connections', 16);

interface WrkResult {
  requests: number;
  rps: number;
  p50us: number;
  p99us: number;
}

function parseLatency(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1 : m[2] === 'ms' ? 1000 : 1e6);
}

/** Milliseconds each connection waits before its next request at the fixed rate. */
const FIXED_DELAY_MS = arg('delay-ms', 2);
let paceScript = '';

/** wrk at saturation, or paced (a Lua delay() per request: a fixed rate well below it). */
function wrk(seconds: number, paced = false): WrkResult {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  if (paced) args.push('-s', paceScript);
  const r = spawnSync('wrk', [...args, `http://127.0.0.1:${PORT}/hello`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50us: parseLatency(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99us: parseLatency(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
  };
}

function startNginx(dir: string): ChildProcess {
  fs.mkdirSync(path.join(dir, 'www'), { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path ${dir}/body;
  server { listen 127.0.0.1:${PORT}; root ${dir}/www; location = /hello { default_type text/plain; return 200 "hello\\n"; } } }
`,
  );
  return spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
}

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function waitLine(child: ChildProcess, stream: 'stdout' | 'stderr', pred: (l: string) => boolean): Promise<void> {
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

interface AgentRound extends WrkResult {
  transactions: number;
  wrong: number;
  unanswered: number;
  cpuSeconds: number;
  rssMiB: number;
  kernel: Record<string, number>;
  eventsPerS: number;
  mbPerS: number;
}

async function agentRound(seconds: number, dir: string, paced = false): Promise<AgentRound> {
  // documents go to a file (a slow reader would only measure itself), checked afterwards
  const docsFile = path.join(dir, 'docs.ndjson');
  const fd = fs.openSync(docsFile, 'w');
  const child = spawn(process.execPath, [path.join(REPO, 'bin/packetbeat-ebpf'), 'run', '--ports', `http=${PORT}`, '--stats-interval', '0'], {
    stdio: ['ignore', fd, 'pipe'],
  });
  fs.closeSync(fd);
  let last: Record<string, any> = {};
  const stderr = readline.createInterface({ input: child.stderr! });
  const ready = new Promise<void>((resolve) =>
    stderr.on('line', (l) => {
      if (l.includes('"capturing"')) resolve();
      if (l.includes('"stopping"')) last = JSON.parse(l).stats;
    }),
  );
  await ready;
  const cpu0 = cpuSeconds(child.pid!);
  const t0 = Date.now();
  const w = wrk(seconds, paced);
  const rss = rssMiB(child.pid!);
  await new Promise((r) => setTimeout(r, 1000)); // let the agent finish what was captured
  const cpu = cpuSeconds(child.pid!) - cpu0;
  const elapsed = (Date.now() - t0) / 1000;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
  // every document is checked against what wrk sent
  let transactions = 0;
  let wrong = 0;
  let unanswered = 0;
  for (const l of fs.readFileSync(docsFile, 'utf8').split('\n')) {
    if (!l) continue;
    const d = JSON.parse(l) as Record<string, any>;
    // requests in flight when wrk stops are reported unanswered: not a completed request
    if (d.http?.response === undefined && d.method === 'GET' && d.url?.path === '/hello') {
      unanswered++;
      continue;
    }
    transactions++;
    if (d.method !== 'GET' || d.url?.path !== '/hello' || d.http?.response?.status_code !== 200) wrong++;
  }
  fs.rmSync(docsFile);
  return {
    ...w,
    transactions,
    wrong,
    unanswered,
    cpuSeconds: cpu,
    rssMiB: rss,
    kernel: last.kernel ?? {},
    eventsPerS: (last.events ?? 0) / elapsed,
    mbPerS: (last.bytes_captured ?? 0) / elapsed / 1e6,
  };
}

async function floorRound(seconds: number): Promise<WrkResult> {
  const floor = spawn(path.join(REPO, 'bench/floor/floor'), [String(PORT), String(seconds + 5)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitLine(floor, 'stdout', (l) => l === 'ready');
  const w = wrk(seconds);
  const exited = new Promise((r) => floor.once('exit', r));
  floor.kill('SIGINT');
  await exited;
  return w;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const spread = (xs: number[]) => [Math.min(...xs), Math.max(...xs)];
const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-bench-'));
  const nginx = startNginx(dir);
  await new Promise((r) => setTimeout(r, 500));
  paceScript = path.join(dir, 'pace.lua');
  fs.writeFileSync(paceScript, `function delay()\n  return ${FIXED_DELAY_MS}\nend\n`);
  const rounds: Array<{ off: WrkResult; floor: WrkResult; agent: AgentRound; offPaced: WrkResult; agentPaced: AgentRound }> = [];
  try {
    wrk(1); // warm up
    for (let i = 0; i < ROUNDS; i++) {
      const off = wrk(SECONDS);
      const floor = await floorRound(SECONDS);
      const agent = await agentRound(SECONDS, dir);
      const offPaced = wrk(SECONDS, true);
      const agentPaced = await agentRound(SECONDS, dir, true);
      rounds.push({ off, floor, agent, offPaced, agentPaced });
      process.stderr.write(
        `round ${i + 1}/${ROUNDS}: off ${off.rps.toFixed(0)} rps, floor ${floor.rps.toFixed(0)}, agent ${agent.rps.toFixed(0)} ` +
          `(${agent.transactions}/${agent.requests} txns, ${agent.cpuSeconds.toFixed(2)} cpu-s, drops ${agent.kernel.ringbufDrops ?? '?'}); ` +
          `paced: p99 ${offPaced.p99us}us off, ${agentPaced.p99us}us agent, ${agentPaced.transactions}/${agentPaced.requests} txns\n`,
      );
    }
  } finally {
    nginx.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const floorRatio = rounds.map((r) => r.floor.rps / r.off.rps);
  const agentRatio = rounds.map((r) => r.agent.rps / r.off.rps);
  const agentVsFloor = rounds.map((r) => r.agent.rps / r.floor.rps);
  const completeness = rounds.map((r) => r.agent.transactions / r.agent.requests);
  const cpuPer10k = rounds.map((r) => (r.agent.cpuSeconds / r.agent.transactions) * 1e4);
  const p99Growth = rounds.map((r) => r.agent.p99us / r.off.p99us);
  const pacedCompleteness = rounds.map((r) => r.agentPaced.transactions / r.agentPaced.requests);
  const pacedP50 = rounds.map((r) => r.agentPaced.p50us / r.offPaced.p50us);
  const pacedP99 = rounds.map((r) => r.agentPaced.p99us / r.offPaced.p99us);
  const summary = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release(), node: process.version },
    load: { tool: 'wrk', threads: 1, connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, response: 'nginx "hello\\n", keep-alive' },
    floor_vs_untraced_rps: { median: r3(median(floorRatio)), spread: spread(floorRatio).map(r3) },
    agent_vs_untraced_rps: { median: r3(median(agentRatio)), spread: spread(agentRatio).map(r3) },
    agent_vs_floor_rps: { median: r3(median(agentVsFloor)), spread: spread(agentVsFloor).map(r3), target: 0.95 },
    agent_p99_vs_untraced_at_saturation: { median: r3(median(p99Growth)), spread: spread(p99Growth).map(r3) },
    fixed_rate: {
      load: `wrk -t1 -c${CONNECTIONS} with a ${FIXED_DELAY_MS} ms delay before each request`,
      requests_per_s: Math.round(median(rounds.map((r) => r.offPaced.rps))),
      agent_p50_vs_untraced: { median: r3(median(pacedP50)), spread: spread(pacedP50).map(r3) },
      agent_p99_vs_untraced: { median: r3(median(pacedP99)), spread: spread(pacedP99).map(r3), target: 1.1 },
      completeness: { median: r3(median(pacedCompleteness)), spread: spread(pacedCompleteness).map(r3), target: 0.999 },
      kernel_ringbuf_drops: rounds.map((r) => r.agentPaced.kernel.ringbufDrops ?? null),
    },
    completeness_at_saturation: { median: r3(median(completeness)), spread: spread(completeness).map(r3) },
    wrong_documents: rounds.reduce((n, r) => n + r.agent.wrong + r.agentPaced.wrong, 0),
    unanswered_at_stop: rounds.reduce((n, r) => n + r.agent.unanswered + r.agentPaced.unanswered, 0),
    kernel_ringbuf_drops: rounds.map((r) => r.agent.kernel.ringbufDrops ?? null),
    agent_cpu_seconds_per_10k_txns: { median: r3(median(cpuPer10k)), spread: spread(cpuPer10k).map(r3), target: 0.2 },
    agent_events_per_s: Math.round(median(rounds.map((r) => r.agent.eventsPerS))),
    agent_mb_per_s: r3(median(rounds.map((r) => r.agent.mbPerS))),
    agent_rss_mib: r3(median(rounds.map((r) => r.agent.rssMiB))),
    rounds,
  };
  const out = path.join(REPO, 'bench/results', `http-${new Date().toISOString().slice(0, 10)}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  const { rounds: _omit, ...short } = summary;
  process.stdout.write(JSON.stringify(short, null, 2) + '\n');
  process.stderr.write(`written to ${out}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
