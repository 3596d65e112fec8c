/**
 * Decoder throughput without the kernel: records a large capture of real
 * traffic (nginx from apt driven by wrk, tcpdump on loopback; bounded by time
 * and packet count), then replays it through the same pipeline as live
 * capture on one core. Prints MB/s and transactions/s and writes
 * bench/results/replay-<date>.json.
 * Plays it several times (median and spread).
 *   node dist/bench/replay.js [--mb 100] [--body 4096] [--plays 3]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { replayCapture } from '../src/agent/replay';
import { validateConfig } from '../src/config';
import type { Output } from '../src/outputs/types';
import { createLogger } from '../src/util/logger';
import { arg, report, requireTools, runMain, summarize } from './common';

const PORT = 18310;

const TARGET_MB = arg('mb', 100);
const BODY = arg('body', 4096);
const PLAYS = arg('plays', 3);

async function record(dir: string, file: string): Promise<void> {
  fs.mkdirSync(path.join(dir, 'www'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'www', 'body'), Buffer.alloc(BODY, 0x61));
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000; sendfile off; server { listen 127.0.0.1:${PORT}; root ${dir}/www; default_type text/plain; } }
`,
  );
  const nginx = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  // packets of ~BODY bytes: enough of them for TARGET_MB, and never more
  const packets = Math.ceil((TARGET_MB * 1e6) / (BODY / 2));
  const dump = spawn('tcpdump', ['-i', 'lo', '-s', '0', '-U', '-w', file, '-c', String(packets), `tcp port ${PORT}`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 30 && (!fs.existsSync(file) || fs.statSync(file).size < TARGET_MB * 1e6); i++) {
    spawnSync('wrk', ['-t1', '-c8', '-d2s', `http://127.0.0.1:${PORT}/body`], { stdio: 'ignore' });
  }
  dump.kill('SIGINT');
  await new Promise((r) => dump.once('exit', r));
  nginx.kill('SIGTERM');
}

async function main(): Promise<void> {
  requireTools({ nginx: 'nginx-light', wrk: 'wrk', tcpdump: 'tcpdump' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-replay-bench-'));
  const file = path.join(dir, 'http.pcap');
  try {
    await record(dir, file);
    const size = fs.statSync(file).size;
    let docs = 0;
    const output: Output = { name: 'count', publish: (d) => (docs += d.length), flush: async () => {}, stats: () => ({ published: docs, dropped: 0, queued: 0 }) };
    const config = validateConfig({ protocols: { http: { ports: [PORT] } }, infer_protocols: false }, 'bench');
    // several plays of the same file: one play is a second or so, which a noisy neighbour can halve
    const plays: Array<{ seconds: number; cpuSeconds: number; transactions: number; packets: number; parseErrors: number }> = [];
    for (let i = 0; i < PLAYS; i++) {
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const result = await replayCapture(file, config, [output], createLogger('silent'));
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      plays.push({
        seconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        transactions: result.pipeline.transactions,
        packets: result.capture.packets,
        parseErrors: result.pipeline.parseErrors,
      });
      process.stderr.write(`play ${i + 1}/${PLAYS}: ${(size / 1e6 / seconds).toFixed(1)} MB/s, ${result.pipeline.transactions} transactions\n`);
    }
    const summary = {
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      capture: { bytes: size, packets: plays[0].packets, body_bytes: BODY, source: 'tcpdump -i lo of wrk → nginx' },
      plays: PLAYS,
      seconds: summarize(plays.map((p) => p.seconds)),
      cpu_seconds: summarize(plays.map((p) => p.cpuSeconds)),
      mb_per_s: { ...summarize(plays.map((p) => size / 1e6 / p.seconds)), target: 100 },
      transactions: plays[0].transactions,
      transactions_per_s: summarize(plays.map((p) => p.transactions / p.seconds)),
      parse_errors: plays[0].parseErrors,
    };
    report('replay', summary);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
