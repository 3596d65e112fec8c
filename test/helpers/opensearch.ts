import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './agent';
import { freePort } from './net';

export { freePort };

/**
 * A real OpenSearch node on loopback for the tests, assembled from Maven Central
 * jars by scripts/opensearch.sh (cached under /var/cache/packetbeat-ebpf/).
 * Single-node discovery, small heap, free ports; killed when the test process exits.
 */
export interface OpenSearchNode {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Where the node keeps its data (kept across stop/start). */
  readonly dataDir: string;
  /** Stop the node (SIGTERM, then SIGKILL past a bound); data and port are kept. */
  stop(): Promise<void>;
  /** Start it again on the same port and data; resolves once healthy. */
  start(): Promise<void>;
  /** Stop and remove its directories (not a dataDir the caller gave). */
  close(): Promise<void>;
  /** The node's recent log lines. */
  log(): string;
}

export interface OpenSearchOptions {
  /** Keep the data here (e.g. to start a second node on the same data); default a temp dir. */
  dataDir?: string;
  heapMb?: number;
  /** Bound on start-up until the cluster is yellow or green. */
  startTimeoutMs?: number;
  /** More node settings (-E key=value), e.g. { 'http.max_content_length': '1kb' }. */
  settings?: Record<string, string>;
}

const SCRIPT = path.join(REPO, 'scripts/opensearch.sh');
/** Unprivileged uid/gid for the node when the tests run as root (OpenSearch refuses root). */
const NOBODY = 65534;
const LOG_LINES_KEPT = 300;
const STOP_GRACE_MS = 20_000;
const HEALTH_POLL_MS = 500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Can this machine run an OpenSearch node? Skip reason, or false. Under CI a skip is a failure. */
export function openSearchSkip(): string | false {
  const java = spawnSync('java', ['-version'], { stdio: 'ignore' });
  const reason = java.error || java.status !== 0 ? 'java (17+) is not installed' : '';
  if (!reason) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true but the OpenSearch tests cannot run here: ${reason}`);
  return reason;
}

/** The assembled node's home: runs the (idempotent, cached) fetch script. */
export function openSearchHome(): string {
  if (process.env.OPENSEARCH_HOME) return process.env.OPENSEARCH_HOME;
  const out = execFileSync(SCRIPT, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 10 * 60_000 });
  return out.trim().split('\n').pop()!;
}

// every node this process started, killed when it exits however it exits
const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function ownForNode(dir: string): void {
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
}

export async function startOpenSearch({ dataDir, heapMb = 512, startTimeoutMs = 180_000, settings: extra = {} }: OpenSearchOptions = {}): Promise<OpenSearchNode> {
  const home = openSearchHome();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-opensearch-'));
  tempDirs.add(dir);
  const conf = path.join(dir, 'config');
  const tmp = path.join(dir, 'tmp');
  const logs = path.join(dir, 'logs');
  const data = dataDir ?? path.join(dir, 'data');
  for (const d of [conf, tmp, logs, data]) fs.mkdirSync(d, { recursive: true });
  for (const f of fs.readdirSync(path.join(home, 'config'))) fs.copyFileSync(path.join(home, 'config', f), path.join(conf, f));
  fs.chmodSync(dir, 0o755);
  ownForNode(dir);
  if (dataDir) ownForNode(dataDir);

  const port = await freePort();
  const transportPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const jvm = [
    `-Xms${heapMb}m`,
    `-Xmx${heapMb}m`,
    // one collector thread: the machine is shared with the agent and the traced servers
    '-XX:+UseSerialGC',
    '-XX:-OmitStackTraceInFastThrow',
    '-Djava.security.manager=allow',
    `-Djava.io.tmpdir=${tmp}`,
    '-Dfile.encoding=UTF-8',
    '-Djava.locale.providers=SPI,COMPAT',
    '-Djna.nosys=true',
    '-Dio.netty.noUnsafe=true',
    '-Dio.netty.noKeySetOptimization=true',
    '-Dio.netty.recycler.maxCapacityPerThread=0',
    '-Dlog4j.shutdownHookEnabled=false',
    '-Dlog4j2.disable.jmx=true',
    `-Dopensearch.path.home=${home}`,
    `-Dopensearch.path.conf=${conf}`,
    '-Dopensearch.distribution.type=tar',
    '-Dopensearch.bundled_jdk=false',
    '-cp',
    `${home}/lib/*`,
    'org.opensearch.bootstrap.OpenSearch',
  ];
  const settings = {
    'cluster.name': 'packetbeat-ebpf-test',
    'node.name': 'node-1',
    'discovery.type': 'single-node',
    'network.host': '127.0.0.1',
    'http.port': String(port),
    'transport.port': String(transportPort),
    'path.data': data,
    'path.logs': logs,
    // a nearly full test disk must not turn indices read-only
    'cluster.routing.allocation.disk.threshold_enabled': 'false',
    ...extra,
  };
  const args = [...jvm, ...Object.entries(settings).map(([k, v]) => `-E${k}=${v}`)];
  // setpriv: the node dies with this process (parent-death signal), as nobody when we are root
  const asUser = process.getuid?.() === 0 ? [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : [];
  const lines: string[] = [];
  let child: ChildProcess | undefined;

  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(l);
    if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
  };
  const log = () => lines.join('\n');

  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, sleep(STOP_GRACE_MS)]);
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await exited;
    }
  };

  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error('OpenSearch node already running');
    const c = spawn('setpriv', [...asUser, '--pdeathsig', 'SIGKILL', 'java', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    live.add(c);
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    let exit: string | undefined;
    c.once('exit', (code, signal) => {
      live.delete(c);
      exit = `exited (${signal ?? code})`;
    });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (exit) throw new Error(`OpenSearch ${exit} before it was healthy; its log:\n${log()}`);
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`OpenSearch not healthy within ${startTimeoutMs} ms; its log:\n${log()}`);
      }
      try {
        const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=1s`, { signal: AbortSignal.timeout(5000) });
        const body = (await res.json()) as { status?: string };
        if (res.ok && (body.status === 'yellow' || body.status === 'green')) return;
      } catch {
        // not listening yet
      }
      await sleep(HEALTH_POLL_MS);
    }
  };

  await start();
  return {
    url,
    port,
    dataDir: data,
    stop,
    start,
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
    log,
  };
}
