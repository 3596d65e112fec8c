/**
 * Decoder throughput without the kernel: records large captures of real
 * traffic with tcpdump on loopback (bounded by size, packet count and
 * rounds of load): HTTP (nginx from apt driven by wrk, --mb MB), Redis
 * (redis-benchmark, pipelined SET/GET/LPUSH/LRANGE), PostgreSQL (pgbench's
 * select-only script) and MySQL (MariaDB driven by mysqlslap's generated read
 * load), --mb-db MB each; then replays each through the same pipeline as live
 * capture on one core, several times. Prints MB/s and transactions/s per
 * protocol (the ≥ 100 MB/s target is HTTP's) and writes
 * bench/results/replay-<date>.json.
 *   node dist/bench/replay.js [--mb 100] [--mb-db 30] [--body 4096] [--plays 3] [--protocols http,redis,pgsql,mysql]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { replayCapture } from '../src/agent/replay';
import { validateConfig } from '../src/config';
import type { Output } from '../src/outputs/types';
import { createLogger } from '../src/util/logger';
import { startMariadb, startPostgres, startRedis, type RunningDatabase } from '../test/helpers/databases';
import { arg, report, requireTools, runMain, summarize } from './common';

const PORTS = { http: 18310, redis: 18311, pgsql: 18312, mysql: 18313 } as const;
type Protocol = keyof typeof PORTS;

const TARGET_MB = arg('mb', 100);
const DB_MB = arg('mb-db', 30);
const BODY = arg('body', 4096);
const PLAYS = arg('plays', 3);

function protocolsArg(): Protocol[] {
  const i = process.argv.indexOf('--protocols');
  if (i < 0) return Object.keys(PORTS) as Protocol[];
  const list = String(process.argv[i + 1] ?? '').split(',');
  for (const p of list) if (!(p in PORTS)) throw new Error(`--protocols: unknown protocol ${JSON.stringify(p)} (http, redis, pgsql, mysql)`);
  return list as Protocol[];
}

/**
 * tcpdump of `port` on loopback while `load` runs again and again, until the
 * file holds `mb` MB (at most `rounds` loads; tcpdump also stops by itself
 * after `maxPackets`). Returns the packets tcpdump says the kernel dropped
 * (its buffer overran: the capture then has holes the decoders must skip).
 */
async function capture(file: string, port: number, mb: number, load: () => void, rounds = 40, maxPackets = 20_000_000): Promise<number> {
  // a 256 MiB capture buffer: loopback at full speed outruns tcpdump's default 2 MiB
  const dump = spawn('tcpdump', ['-i', 'lo', '-s', '0', '-B', String(256 * 1024), '-U', '-w', file, '-c', String(maxPackets), `tcp port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  dump.stderr!.on('data', (d) => (stderr += d));
  await new Promise((r) => setTimeout(r, 1000));
  try {
    for (let i = 0; i < rounds && (!fs.existsSync(file) || fs.statSync(file).size < mb * 1e6); i++) load();
  } finally {
    const exited = new Promise((r) => dump.once('close', r));
    dump.kill('SIGINT');
    await exited;
  }
  if (!fs.existsSync(file) || fs.statSync(file).size === 0) throw new Error(`tcpdump wrote nothing to ${file}: ${stderr}`);
  const dropped = /(\d+) packets? dropped by kernel/.exec(stderr);
  if (!dropped) throw new Error(`tcpdump did not say how many packets it dropped: ${stderr}`);
  return Number(dropped[1]);
}

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${r.stderr}`);
}

async function withServer(start: () => Promise<RunningDatabase>, body: (db: RunningDatabase) => Promise<void>): Promise<void> {
  const db = await start();
  try {
    await body(db);
  } finally {
    await db.stop();
  }
}

/** Redis: redis-benchmark's pipelined commands (many small messages per packet). */
async function recordRedis(file: string): Promise<Recorded> {
  const port = PORTS.redis;
  let dropped = 0;
  await withServer(
    () => startRedis(port),
    async () => {
      dropped = await capture(file, port, DB_MB, () => mustRun('redis-benchmark', ['-p', String(port), '-t', 'set,get,lpush,lrange_100', '-n', '20000', '-P', '16', '-c', '8', '-q']));
    },
  );
  return { source: 'tcpdump -i lo of redis-benchmark -t set,get,lpush,lrange_100 -P 16 → redis-server', dropped };
}

/** PostgreSQL: pgbench -S (simple query protocol), one query and one row per transaction. */
async function recordPgsql(file: string): Promise<Recorded> {
  const port = PORTS.pgsql;
  const conn = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'];
  let dropped = 0;
  await withServer(
    () => startPostgres(port),
    async () => {
      mustRun('pgbench', [...conn, '-i', '-q', '-s', '1', 'postgres']);
      dropped = await capture(file, port, DB_MB, () => mustRun('pgbench', [...conn, '-n', '-S', '-M', 'simple', '-c', '8', '-j', '2', '-T', '3', 'postgres']));
    },
  );
  return { source: 'tcpdump -i lo of pgbench -S -M simple -c 8 → PostgreSQL 15', dropped };
}

/** MySQL: mysqlslap's generated read load against MariaDB (result sets of generated rows). */
async function recordMysql(file: string): Promise<Recorded> {
  const port = PORTS.mysql;
  const slap = ['-h', '127.0.0.1', '-P', String(port), '-uroot', '--auto-generate-sql', '--auto-generate-sql-load-type=read', '--concurrency=8', '--number-of-queries=1000', '--iterations=1', '--silent'];
  let dropped = 0;
  await withServer(
    () => startMariadb(port),
    async () => {
      dropped = await capture(file, port, DB_MB, () => mustRun('mysqlslap', slap));
    },
  );
  return { source: 'tcpdump -i lo of mysqlslap --auto-generate-sql-load-type=read --concurrency=8 → MariaDB', dropped };
}

/** HTTP: wrk → nginx, a --body bytes response (packets of ~body bytes). */
async function recordHttp(dir: string, file: string): Promise<Recorded> {
  const PORT = PORTS.http;
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
  try {
    const load = () => spawnSync('wrk', ['-t1', '-c8', '-d2s', `http://127.0.0.1:${PORT}/body`], { stdio: 'ignore' });
    const dropped = await capture(file, PORT, TARGET_MB, load, 30, packets);
    return { source: 'tcpdump -i lo of wrk → nginx', dropped };
  } finally {
    nginx.kill('SIGTERM');
  }
}

/** What a recording was made of, and the packets tcpdump lost making it. */
interface Recorded {
  source: string;
  dropped: number;
}

interface Play {
  seconds: number;
  cpuSeconds: number;
  transactions: number;
  packets: number;
  parseErrors: number;
  gapBytes: number;
}

/** Play `file` PLAYS times through the pipeline (documents counted, not kept). */
async function play(protocol: Protocol, file: string): Promise<Play[]> {
  const size = fs.statSync(file).size;
  let docs = 0;
  const output: Output = { name: 'count', publish: (d) => (docs += d.length), flush: async () => {}, full: () => false, stats: () => ({ published: docs, dropped: 0, queued: 0 }) };
  const config = validateConfig({ protocols: { [protocol]: { ports: [PORTS[protocol]] } }, infer_protocols: false }, 'bench');
  // several plays of the same file: one play is a second or so, which a noisy neighbour can halve
  const plays: Play[] = [];
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
      gapBytes: result.pipeline.gapBytes,
    });
    process.stderr.write(`${protocol} play ${i + 1}/${PLAYS}: ${(size / 1e6 / seconds).toFixed(1)} MB/s, ${result.pipeline.transactions} transactions\n`);
  }
  return plays;
}

async function main(): Promise<void> {
  const protocols = protocolsArg();
  const tools: Record<string, string> = { tcpdump: 'tcpdump' };
  if (protocols.includes('http')) Object.assign(tools, { nginx: 'nginx-light', wrk: 'wrk' });
  if (protocols.includes('redis')) Object.assign(tools, { 'redis-server': 'redis-server', 'redis-benchmark': 'redis-tools' });
  if (protocols.includes('pgsql')) Object.assign(tools, { pgbench: 'postgresql', pg_isready: 'postgresql' });
  if (protocols.includes('mysql')) Object.assign(tools, { mariadbd: 'mariadb-server', mysqlslap: 'mariadb-client' });
  requireTools(tools);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-replay-bench-'));
  const results: Record<string, unknown> = {};
  try {
    for (const protocol of protocols) {
      const file = path.join(dir, `${protocol}.pcap`);
      const { source, dropped } =
        protocol === 'http' ? await recordHttp(dir, file) : protocol === 'redis' ? await recordRedis(file) : protocol === 'pgsql' ? await recordPgsql(file) : await recordMysql(file);
      const size = fs.statSync(file).size;
      const plays = await play(protocol, file);
      results[protocol] = {
        capture: { bytes: size, packets: plays[0].packets, tcpdump_dropped_packets: dropped, source, ...(protocol === 'http' ? { body_bytes: BODY } : {}) },
        seconds: summarize(plays.map((p) => p.seconds)),
        cpu_seconds: summarize(plays.map((p) => p.cpuSeconds)),
        mb_per_s: { ...summarize(plays.map((p) => size / 1e6 / p.seconds)), ...(protocol === 'http' ? { target: 100 } : {}) },
        transactions: plays[0].transactions,
        transactions_per_s: summarize(plays.map((p) => p.transactions / p.seconds)),
        // loopback loses nothing on the wire: gaps are packets tcpdump dropped (above), errors follow gaps or are the decoder's
        parse_errors: plays[0].parseErrors,
        gap_bytes: plays[0].gapBytes,
      };
      fs.rmSync(file, { force: true });
    }
    report('replay', { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version }, plays: PLAYS, ...results });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
