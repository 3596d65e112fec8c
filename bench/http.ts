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
import { arg, median, r3, spread, withAgent, withFloor, report, runMain } from './common';

const PORT = 18300;

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
  const run = await withAgent(['--ports', `http=${PORT}`], dir, () => wrk(seconds, paced));
  // every document is checked against what wrk sent; requests in flight when wrk
  // stops are reported unanswered: not a completed request
  let transactions = 0;
  let wrong = 0;
  let unanswered = 0;
  for (const d of run.docs) {
    if (d.http?.response === undefined && d.method === 'GET' && d.url?.path === '/hello') {
      unanswered++;
      continue;
    }
    transactions++;
    if (d.method !== 'GET' || d.url?.path !== '/hello' || d.http?.response?.status_code !== 200) wrong++;
  }
  const elapsed = seconds + 1;
  return {
    ...run.result,
    transactions,
    wrong,
    unanswered,
    cpuSeconds: run.cpuSeconds,
    rssMiB: run.rssMiB,
    kernel: run.stats.kernel ?? {},
    eventsPerS: (run.stats.events ?? 0) / elapsed,
    mbPerS: (run.stats.bytes_captured ?? 0) / elapsed / 1e6,
  };
}

async function floorRound(seconds: number): Promise<WrkResult> {
  return withFloor([PORT], seconds, () => wrk(seconds));
}

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
  report('http', summary);
}

runMain(main);
