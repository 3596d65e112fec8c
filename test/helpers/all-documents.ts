/**
 * Every document the agent writes for the captures the tests already use,
 * produced by the real pipeline: our tcpdump captures (test/fixtures/pcap),
 * Packetbeat's captures (../shared/pcaps), the recorded kernel events
 * (test/fixtures/http-loopback) and the recorded protocol streams
 * (test/fixtures/{pgsql,mysql,redis}). Used to prove the field inventory
 * (src/publish/fields.ts) complete and to index known documents into a real
 * OpenSearch/Elasticsearch node.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPipeline } from '../../src/agent/pipeline';
import { replayCapture } from '../../src/agent/replay';
import { createRecordingSource, readRecording } from '../../src/capture/recording';
import { validateConfig, type Config } from '../../src/config';
import { createProcessCache, readProcess, type ProcessInfo } from '../../src/conn/process-info';
import type { Output } from '../../src/outputs/types';
import { createModules } from '../../src/protocols/registry';
import type { ProtocolName, ProtocolTransaction } from '../../src/protocols/types';
import { buildDocument, type TxnDocument } from '../../src/publish/document';
import { createLogger } from '../../src/util/logger';
import type { StreamChunk, StreamFixture } from './relay';

const ROOT = path.resolve(__dirname, '../../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures');
export const SHARED_PCAPS = path.resolve(ROOT, '../shared/pcaps');

/** Packetbeat's default ports plus the ports our own captures use. */
const DEFAULT_PORTS = { http: [80, 8080, 8000, 5000, 8002], mysql: [3306, 3307], pgsql: [5432], redis: [6379] };

/** Every option that adds fields, on (send_*, include_body_for, all headers, split cookies, ...). */
export function everythingConfig(extraPorts: Partial<Record<ProtocolName, number[]>> = {}): Config {
  const ports = (p: ProtocolName) => [...new Set([...DEFAULT_PORTS[p], ...(extraPorts[p] ?? [])])];
  const send = { send_request: true, send_response: true };
  return validateConfig(
    {
      protocols: {
        http: {
          ports: ports('http'),
          ...send,
          send_all_headers: true,
          split_cookie: true,
          redact_authorization: false,
          redact_headers: [],
          hide_keywords: ['pass', 'password', 'secret'],
          include_body_for: ['/'], // every content type has a '/'
          real_ip_header: 'X-Forwarded-For',
        },
        mysql: { ports: ports('mysql'), ...send },
        pgsql: { ports: ports('pgsql'), ...send },
        redis: { ports: ports('redis'), ...send },
      },
      tags: ['inventory'],
    },
    'everything',
  );
}

/** The defaults (redaction on: cookies and Authorization are "*" strings), send_* on. */
export function defaultsConfig(extraPorts: Partial<Record<ProtocolName, number[]>> = {}): Config {
  const ports = (p: ProtocolName) => [...new Set([...DEFAULT_PORTS[p], ...(extraPorts[p] ?? [])])];
  const send = { send_request: true, send_response: true };
  return validateConfig(
    {
      protocols: {
        http: { ports: ports('http'), ...send },
        mysql: { ports: ports('mysql'), ...send },
        pgsql: { ports: ports('pgsql'), ...send },
        redis: { ports: ports('redis'), ...send },
      },
    },
    'defaults',
  );
}

export interface SourcedDocument {
  /** Which capture (and configuration) it came from. */
  source: string;
  doc: TxnDocument;
}

function collector(): { output: Output; docs: TxnDocument[] } {
  const docs: TxnDocument[] = [];
  const output: Output = { name: 'collect', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: docs.length, dropped: 0, queued: 0 }) };
  return { output, docs };
}

/** A pcap/pcapng capture replayed through the pipeline. */
export async function replayDocuments(file: string, config: Config): Promise<TxnDocument[]> {
  const { output, docs } = collector();
  await replayCapture(file, config, [output], createLogger('silent'));
  return docs;
}

/** The recorded kernel events (real processes: curl, node, nginx) through the pipeline. */
export function recordedKernelDocuments(config: Config): TxnDocument[] {
  const dir = path.join(FIXTURES, 'http-loopback');
  const recording = readRecording(path.join(dir, 'events.pberec'));
  const { output, docs } = collector();
  const emptyProc = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-noproc-'));
  try {
    const http = { ...config.protocols.http, ports: [18180, 18181] };
    const pipeline = createPipeline({
      config: { ...config, protocols: { ...config.protocols, http }, join_window_ms: 300 },
      outputs: [output],
      processes: createProcessCache({ procRoot: emptyProc }),
      logger: createLogger('silent'),
      toWallMs: (ns) => recording.header.wallMs + (ns - recording.header.monoNs) / 1e6,
    });
    createRecordingSource(recording).start(pipeline);
    pipeline.flush();
  } finally {
    fs.rmSync(emptyProc, { recursive: true, force: true });
  }
  return docs;
}

/** A process as /proc describes this test process, with a container id (as read from a docker cgroup). */
export function realProcess(): ProcessInfo {
  const me = readProcess(process.pid);
  if (!me) throw new Error('cannot read /proc/self');
  return { ...me, containerId: me.containerId ?? 'a'.repeat(64) };
}

interface RecordedChunk extends StreamChunk {
  gap?: number;
  tail?: string;
}

/** The two processes a stream document is attributed to. */
export interface StreamProcesses {
  client: ProcessInfo;
  server: ProcessInfo;
}

/** The programs that took part in each recorded stream (from the fixtures' descriptions). */
const STREAM_CLIENTS: Record<string, string> = {
  'pgsql/pg-pipeline.json': 'node',
  'pgsql/pg-prepared.json': 'node',
  'pgsql/psql-big.json': 'psql',
  'pgsql/psql-error-multi.json': 'psql',
  'pgsql/psql-multi.json': 'psql',
  'pgsql/psql-script.json': 'psql',
  'pgsql/psql-ssl.json': 'psql',
  'pgsql/raw-pipeline.json': 'node',
  'mysql/cli.json': 'mysql',
  'mysql/mysql2.json': 'node',
  'redis/bigvalue.json': 'redis-cli',
  'redis/cli.json': 'redis-cli',
  'redis/inline.json': 'node',
  'redis/ioredis.json': 'node',
  'redis/monitor.json': 'node',
  'redis/multi.json': 'redis-cli',
  'redis/pipe.json': 'redis-cli',
  'redis/pubsub.json': 'node',
  'redis/resp3.json': 'redis-cli',
};
const STREAM_SERVERS: Record<string, string> = { pgsql: 'postgres', mysql: 'mariadbd', redis: 'redis-server' };

/**
 * The client and server programs of a recorded stream, as the kernel names
 * them (comm, pid, parent, uid: what every event carries; the recordings kept
 * no pids, so these are numbered per program).
 */
export function recordedStreamProcesses(protocol: ProtocolName, file: string): StreamProcesses {
  const client = STREAM_CLIENTS[`${protocol}/${file}`];
  if (!client) throw new Error(`no client program known for ${protocol}/${file}: add it to STREAM_CLIENTS`);
  const server = STREAM_SERVERS[protocol];
  const pid = (name: string) => 2000 + [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 5000, 0);
  const proc = (name: string): ProcessInfo => ({ pid: pid(name), name, ppid: 1, userId: 0, fromProc: false });
  return { client: proc(client), server: proc(server) };
}

/**
 * A recorded protocol stream (each connection of a relay fixture) through the
 * protocol's session, each transaction built into a document with both views
 * (client and server) attributed to the given processes.
 */
export function streamDocuments(protocol: ProtocolName, fixture: StreamFixture, config: Config, processes: StreamProcesses, serverPort: number): TxnDocument[] {
  const modules = createModules(config);
  const module = modules.get(protocol)!;
  const docs: TxnDocument[] = [];
  fixture.connections.forEach((conn, i) => {
    const txns: ProtocolTransaction[] = [];
    const session = module.createSession({ onTransaction: (t) => txns.push(t), onError: () => {} });
    let last = 0;
    for (const c of conn as RecordedChunk[]) {
      session.feed(c.from, Buffer.from(c.data, 'base64'), c.t);
      if (c.gap) {
        session.gap(c.from, c.gap, c.t, false);
        if (c.tail) session.feed(c.from, Buffer.from(c.tail, 'base64'), c.t);
      }
      last = c.t;
    }
    session.close(last + 1);
    const tuple = { family: 4 as const, clientIp: '127.0.0.1', clientPort: 40000 + i, serverIp: '127.0.0.1', serverPort };
    for (const txn of txns) {
      const startNs = txn.request?.startNs ?? txn.response!.startNs;
      const endNs = txn.response?.endNs ?? txn.request!.endNs;
      const view = { protocol, tuple, netns: 0, txn, startNs, endNs };
      docs.push(
        buildDocument(
          { client: { ...view, side: 'client', process: processes.client }, server: { ...view, side: 'server', process: processes.server } },
          { toWallMs: (ns) => Date.UTC(2026, 10, 25) + ns / 1e6, hostname: 'inventory-host', modules, tags: config.tags },
        ),
      );
    }
  });
  return docs;
}

/** The recorded protocol streams' files, by protocol and the port their server used. */
export function streamFixtures(): Array<{ protocol: 'pgsql' | 'mysql' | 'redis'; port: number; file: string; fixture: StreamFixture }> {
  const out = [];
  for (const [protocol, port] of [['pgsql', 5432], ['mysql', 3306], ['redis', 6379]] as const) {
    const dir = path.join(FIXTURES, protocol);
    for (const file of fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      out.push({ protocol, port, file, fixture: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as StreamFixture });
    }
  }
  return out;
}

/** Packetbeat's captures with the protocol and ports its tests configure. */
function sharedPcaps(): Array<[file: string, protocol: ProtocolName, ports: number[]]> {
  const expectations = path.join(SHARED_PCAPS, 'expectations.json');
  if (!fs.existsSync(expectations)) throw new Error(`${expectations} is missing: the shared captures must be beside the repository`);
  const pcaps = (JSON.parse(fs.readFileSync(expectations, 'utf8')) as { pcaps: Record<string, { protocol: ProtocolName; ports: number[] }> }).pcaps;
  return Object.entries(pcaps).map(([file, exp]) => [file, exp.protocol, exp.ports]);
}

/**
 * Known traffic for a real node: every capture under the everything
 * configuration, the recorded streams attributed to the programs that made
 * them (so per-process aggregations have several processes to split by).
 */
export async function knownTrafficDocuments(): Promise<SourcedDocument[]> {
  const out: SourcedDocument[] = [];
  const add = (source: string, docs: TxnDocument[]) => out.push(...docs.map((doc) => ({ source, doc })));
  for (const proto of ['http', 'pgsql', 'mysql', 'redis'] as const) {
    const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'pcap', `${proto}.expected.json`), 'utf8')) as { port: number };
    add(`pcap/${proto}.pcap`, await replayDocuments(path.join(FIXTURES, 'pcap', `${proto}.pcap`), everythingConfig({ [proto]: [expected.port] })));
  }
  for (const [file, protocol, ports] of sharedPcaps()) add(`shared/${file}`, await replayDocuments(path.join(SHARED_PCAPS, file), everythingConfig({ [protocol]: ports })));
  add('http-loopback', recordedKernelDocuments(everythingConfig()));
  for (const s of streamFixtures()) add(`${s.protocol}/${s.file}`, streamDocuments(s.protocol, s.fixture, everythingConfig(), recordedStreamProcesses(s.protocol, s.file), s.port));
  return out;
}

/** Every document of every capture the tests use, under both configurations. */
export async function allDocuments(): Promise<SourcedDocument[]> {
  const out: SourcedDocument[] = [];
  const add = (source: string, docs: TxnDocument[]) => out.push(...docs.map((doc) => ({ source, doc })));
  for (const [name, make] of [
    ['everything', everythingConfig],
    ['defaults', defaultsConfig],
  ] as const) {
    // our tcpdump captures, on the ports written beside them
    for (const proto of ['http', 'pgsql', 'mysql', 'redis'] as const) {
      const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'pcap', `${proto}.expected.json`), 'utf8')) as { port: number };
      add(`pcap/${proto}.pcap (${name})`, await replayDocuments(path.join(FIXTURES, 'pcap', `${proto}.pcap`), make({ [proto]: [expected.port] })));
    }
    // Packetbeat's captures, on the ports its tests configure
    for (const [file, protocol, ports] of sharedPcaps()) add(`shared/${file} (${name})`, await replayDocuments(path.join(SHARED_PCAPS, file), make({ [protocol]: ports })));
    // kernel events with their processes
    add(`http-loopback (${name})`, recordedKernelDocuments(make()));
    // recorded protocol streams, with a fully described process (this one, from /proc) on both ends
    const proc = realProcess();
    for (const st of streamFixtures()) add(`${st.protocol}/${st.file} (${name})`, streamDocuments(st.protocol, st.fixture, make(), { client: proc, server: proc }, st.port));
  }
  return out;
}
