/**
 * Acceptance of output.otlp against a real OpenTelemetry Collector (built from
 * the Go module proxy by scripts/otelcol.sh; OTLP receiver, file exporter):
 *
 * - `replay` of pcaps of real PostgreSQL and Redis servers with --otlp, over
 *   http/protobuf, http/json and grpc: what the collector wrote matches the
 *   documents printed beside it (no kernel needed);
 * - `run` as root with console and OTLP at once, nginx/curl, Redis/redis-cli
 *   and PostgreSQL/psql traffic, over http/protobuf and grpc: a CLIENT and a
 *   SERVER span per transaction in one trace, each with the Resource of its
 *   process (the pids of the clients we spawned and of the servers), the
 *   conventions' attributes, and duration histograms per process whose counts
 *   are the transactions'.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { BIN, kernelSkip, REPO, startAgent, type AgentRun } from '../helpers/agent';
import { startPostgres, startRedis, type RunningDatabase } from '../helpers/databases';
import {
  collectorSkip,
  histogramTotals,
  startCollector,
  waitUntil,
  type CollectedSpan,
  type RunningCollector,
} from '../helpers/otelcol';
import { startNginx, type RunningServer } from '../helpers/servers';
import { createOtlpOutput } from '../../src/outputs/otlp';
import { recordedHttpDocuments } from '../unit/outputs/otlp/documents';

type Doc = Record<string, any>;

/** OTLP's SpanKind numbers and status codes. */
const KIND_SERVER = 2;
const KIND_CLIENT = 3;
const STATUS_ERROR = 2;

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const PCAPS = path.join(REPO, 'test/fixtures/pcap');

const collectorMissing = collectorSkip();

/** Spans grouped by trace: [client span?, server span?]. */
function traces(spans: CollectedSpan[]): Map<string, { client?: CollectedSpan; server?: CollectedSpan }> {
  const out = new Map<string, { client?: CollectedSpan; server?: CollectedSpan }>();
  for (const s of spans) {
    const t = out.get(s.traceId) ?? {};
    if (s.kind === KIND_CLIENT) t.client = s;
    else if (s.kind === KIND_SERVER) t.server = s;
    else assert.fail(`unexpected span kind ${s.kind}`);
    out.set(s.traceId, t);
  }
  return out;
}

function replay(pcap: string, port: string, endpoint: string, protocol: string): { docs: Doc[]; stderr: string; status: number | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-otlp-replay-'));
  try {
    const cfg = path.join(dir, 'config.yml');
    fs.writeFileSync(cfg, JSON.stringify({ infer_protocols: false, output: { otlp: { batch_delay_ms: 100 } } }));
    const r = spawnSync(process.execPath, [BIN, 'replay', pcap, '-c', cfg, '--ports', port, '--otlp', endpoint, '--otlp-protocol', protocol], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const docs = r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Doc);
    return { docs, stderr: r.stderr, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('OTLP: replayed captures to a real collector', { skip: collectorMissing }, () => {
  for (const protocol of ['http/protobuf', 'http/json', 'grpc']) {
    test(`${protocol}: PostgreSQL and Redis transactions arrive as spans and histograms`, async () => {
      const collector = await startCollector();
      try {
        const endpoint = protocol === 'grpc' ? collector.grpcEndpoint : collector.httpEndpoint;
        const pg = replay(path.join(PCAPS, 'pgsql.pcap'), 'pgsql=17432', endpoint, protocol);
        const redis = replay(path.join(PCAPS, 'redis.pcap'), 'redis=17379', endpoint, protocol);
        for (const r of [pg, redis]) {
          // the command exits by itself: the output released its connections and timers
          assert.equal(r.status, 0, r.stderr);
          assert.match(r.stderr, /OTLP output closed; everything delivered/);
        }
        const docs = [...pg.docs, ...redis.docs];
        assert.ok(pg.docs.length >= 4 && redis.docs.length >= 4);
        await waitUntil(() => collector.readSpans().length >= docs.length, `${docs.length} spans`);
        const spans = collector.readSpans();
        assert.equal(spans.length, docs.length);
        for (const d of docs) {
          const match = spans.filter((s) => s.attributes['db.query.text'] === d.query && s.attributes['network.peer.port'] === d.source.port);
          assert.equal(match.length, 1, `${d.query}: ${match.length} spans`);
          const [s] = match;
          // seen on the wire: the server's view, no process known
          assert.equal(s.kind, KIND_SERVER);
          assert.equal(s.resource['service.name'], 'unknown_service');
          assert.equal(s.resource['process.pid'], undefined);
          assert.equal(s.attributes['db.system.name'], d.type === 'pgsql' ? 'postgresql' : 'redis');
          assert.equal(s.attributes['db.operation.name'], d.method);
          assert.equal(s.attributes['server.port'], d.destination.port);
          assert.equal(s.endNs - s.startNs, BigInt(d.event.duration));
          assert.equal(s.status.code === STATUS_ERROR, d.status === 'Error', d.query);
          assert.equal(s.scope, 'packetbeat-ebpf');
        }
        const failed = spans.find((s) => s.attributes['db.query.text'] === 'SELECT * FROM nope')!;
        assert.equal(failed.attributes['error.type'], '42P01');
        const totalsNow = () => histogramTotals(collector.readMetrics(), (p) => `${p.name} ${p.attributes['db.system.name']}`);
        await waitUntil(() => totalsNow().size === 2, 'the metrics of both replays');
        const totals = totalsNow();
        assert.equal(totals.get('packetbeat_ebpf.db.server.operation.duration postgresql'), pg.docs.length);
        assert.equal(totals.get('packetbeat_ebpf.db.server.operation.duration redis'), redis.docs.length);
      } finally {
        await collector.stop();
      }
    });
  }
});

describe('OTLP: the collector goes away and comes back', { skip: collectorMissing }, () => {
  for (const protocol of ['http/protobuf', 'grpc'] as const) {
    test(`${protocol}: what is sent meanwhile is counted as lost and reported; the rest arrives`, async () => {
      const lines: Array<Record<string, any>> = [];
      const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (c.toString().split('\n').forEach((l) => l && lines.push(JSON.parse(l))), cb()) }));
      let collector = await startCollector();
      const endpoint = protocol === 'grpc' ? collector.grpcEndpoint : collector.httpEndpoint;
      const out = createOtlpOutput({ protocol, endpoint, timeoutMs: 2000, batchDelayMs: 50, logger });
      try {
        const first = recordedHttpDocuments({}, [out]);
        await out.flush();
        await waitUntil(() => collector.readSpans().length === 2 * first.length, 'the first spans');
        const { httpPort, grpcPort } = collector;
        await collector.stop();
        const lost = recordedHttpDocuments({}, [out]);
        await out.flush();
        assert.equal(out.stats().failed, lost.length);
        assert.equal(out.stats().spans_failed, 2 * lost.length);
        collector = await startCollector({ httpPort, grpcPort });
        const last = recordedHttpDocuments({}, [out]);
        await out.flush();
        await waitUntil(() => collector.readSpans().length === 2 * last.length, 'the spans after the restart');
        await out.close();
        const s = out.stats();
        assert.equal(s.published, first.length + lost.length + last.length);
        assert.equal(s.spans_exported, 2 * (first.length + last.length));
        assert.equal(s.dropped, lost.length);
        const report = lines.find((l) => l.msg === 'OTLP output closed; some transactions were not delivered');
        assert.ok(report, JSON.stringify(lines.map((l) => l.msg)));
        assert.equal(report.stats.failed, lost.length);
        assert.ok(lines.some((l) => l.msg === 'OTLP span export failed; spans lost'));
      } finally {
        await out.close();
        await collector.stop();
      }
    });
  }
});

const HTTP_PORT = 18280;
const REDIS_PORT = 16489;
const PG_PORT = 15532;

/** Run a client to its end; its pid. */
function client(cmd: string, args: string[]): Promise<number> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve(child.pid!));
  });
}

const kernelMissing = collectorMissing || kernelSkip();

describe('OTLP: the live agent to a real collector', { skip: kernelMissing }, () => {
  let nginx: RunningServer;
  let redis: RunningDatabase;
  let pg: RunningDatabase;

  before(async () => {
    nginx = await startNginx(HTTP_PORT);
    redis = await startRedis(REDIS_PORT);
    pg = await startPostgres(PG_PORT);
  });
  after(async () => {
    await nginx?.stop();
    await redis?.stop();
    await pg?.stop();
  });

  for (const protocol of ['http/protobuf', 'grpc']) {
    describe(`over ${protocol}`, () => {
      let collector: RunningCollector;
      let agent: AgentRun;
      let exit: { code: number | null; signal: NodeJS.Signals | null };
      const pids = { hello: [] as number[], missing: 0, redisSet: 0, redisGet: 0, psqlOk: 0, psqlError: 0 };
      let spans: CollectedSpan[] = [];
      let docs: Doc[] = [];

      before(async () => {
        collector = await startCollector();
        agent = await startAgent({
          protocols: { http: { ports: [HTTP_PORT] }, redis: { ports: [REDIS_PORT] }, pgsql: { ports: [PG_PORT] } },
          infer_protocols: false,
          stats_interval_s: 0,
          join_window_ms: 300,
          output: {
            otlp: {
              enabled: true,
              endpoint: protocol === 'grpc' ? collector.grpcEndpoint : collector.httpEndpoint,
              protocol,
              batch_delay_ms: 200,
              metrics_interval_ms: 1000,
            },
          },
        });
        const url = `http://127.0.0.1:${HTTP_PORT}`;
        for (let i = 0; i < 3; i++) pids.hello.push(await client('curl', ['-s', '-o', '/dev/null', `${url}/hello`]));
        pids.missing = await client('curl', ['-s', '-o', '/dev/null', `${url}/missing`]);
        pids.redisSet = await client('redis-cli', ['-p', String(REDIS_PORT), 'SET', 'otlp', 'yes']);
        pids.redisGet = await client('redis-cli', ['-p', String(REDIS_PORT), 'GET', 'otlp']);
        const psql = (sql: string) => client('psql', ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'postgres', '-X', '-c', sql]);
        pids.psqlOk = await psql('SELECT 42');
        pids.psqlError = await psql('SELECT * FROM otlp_nope');
        await agent.waitFor(
          (ds) =>
            ds.filter((d) => d.type === 'http').length >= 4 &&
            ds.some((d) => d.type === 'redis' && d.method === 'GET') &&
            ds.some((d) => d.type === 'pgsql' && d.query === 'SELECT * FROM otlp_nope'),
        );
        await new Promise((r) => setTimeout(r, 500));
        // SIGTERM: the agent flushes its outputs and exports the last metrics
        agent.child.kill('SIGTERM');
        exit = await agent.exited;
        docs = agent.docs.filter((d) => d.source?.process && d.destination?.process);
        const want = docs.length * 2;
        await waitUntil(() => collector.readSpans().length >= want, `${want} spans`);
        spans = collector.readSpans();
        // every process's last metrics (one export request per process, written in any order)
        const processes = new Set(docs.flatMap((d) => [d.source.process.pid, d.destination.process.pid]));
        await waitUntil(() => {
          const seen = new Set(collector.readMetrics().map((p) => p.resource['process.pid']));
          return [...processes].every((pid) => seen.has(pid));
        }, `the metrics of ${processes.size} processes`);
      });

      after(async () => {
        if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
        await collector?.stop();
      });

      test('the agent printed every document and exported every span (console and OTLP at once)', () => {
        assert.equal(exit.code, 0, agent.stderr.join('\n'));
        assert.equal(docs.length, agent.docs.length, 'every transaction was seen by both ends');
        assert.ok(agent.stderr.some((l) => l.includes('OTLP output closed; everything delivered')), agent.stderr.join('\n'));
        assert.equal(spans.length, 2 * docs.length);
        const byTrace = traces(spans);
        assert.equal(byTrace.size, docs.length, 'one trace per transaction');
        for (const { client: c, server: s } of byTrace.values()) {
          assert.ok(c && s, 'a CLIENT and a SERVER span in each trace');
          assert.equal(c.parentSpanId, '');
          assert.equal(s.parentSpanId, c.spanId);
          // the server's view lies inside the client's
          assert.ok(c.startNs <= s.startNs && s.endNs <= c.endNs, `${c.name}: server inside client`);
          assert.equal(c.resource['host.name'], os.hostname());
        }
      });

      /** The trace of a document: its server span names the client's port. */
      function traceOf(d: Doc) {
        const found = [...traces(spans).values()].filter(
          (t) =>
            t.server !== undefined &&
            t.server.attributes['client.port'] === d.source.port &&
            (d.type === 'http' ? t.server.attributes['url.path'] === d.url.path : t.server.attributes['db.query.text'] === d.query),
        );
        assert.equal(found.length, 1, `${d.query}: ${found.length} traces`);
        return found[0] as { client: CollectedSpan; server: CollectedSpan };
      }

      test('curl → nginx: HTTP attributes, and each span the Resource of its own process', () => {
        const hellos = docs.filter((d) => d.type === 'http' && d.url.path === '/hello');
        assert.deepEqual(hellos.map((d) => d.source.process.pid).sort(), [...pids.hello].sort());
        for (const d of hellos) {
          const { client: c, server: s } = traceOf(d);
          assert.equal(c.name, 'GET');
          assert.equal(c.resource['process.pid'], d.source.process.pid);
          assert.equal(c.resource['process.executable.path'], '/usr/bin/curl');
          assert.equal(c.resource['process.executable.name'], 'curl');
          assert.equal(c.resource['service.name'], 'curl');
          assert.equal(c.resource['process.command_line'], `curl -s -o /dev/null http://127.0.0.1:${HTTP_PORT}/hello`);
          assert.equal(s.resource['process.pid'], nginx.pid);
          assert.equal(s.resource['process.executable.path'], '/usr/sbin/nginx');
          assert.equal(s.resource['service.name'], 'nginx');
          for (const span of [c, s]) {
            assert.equal(span.attributes['http.request.method'], 'GET');
            assert.equal(span.attributes['http.response.status_code'], 200);
            assert.equal(span.attributes['url.path'], '/hello');
            assert.equal(span.attributes['server.port'], HTTP_PORT);
            assert.equal(span.attributes['network.protocol.version'], '1.1');
            assert.equal(span.attributes['user_agent.original'], d.user_agent.original);
          }
          assert.equal(c.attributes['url.full'], `http://127.0.0.1:${HTTP_PORT}/hello`);
          assert.equal(c.attributes['network.peer.port'], HTTP_PORT);
          assert.equal(s.attributes['client.port'], d.source.port);
          assert.equal(s.attributes['network.peer.port'], d.source.port);
          assert.equal(c.endNs - c.startNs, BigInt(d.event.duration));
          assert.equal(s.endNs - s.startNs, BigInt(d.packetbeat_ebpf.server_duration));
        }
        const missing = traceOf(docs.find((d) => d.type === 'http' && d.url.path === '/missing')!);
        assert.equal(missing.client.resource['process.pid'], pids.missing);
        assert.equal(missing.client.attributes['error.type'], '404');
        assert.equal(missing.client.status.code, STATUS_ERROR);
        assert.equal(missing.server.attributes['error.type'], undefined);
      });

      test('redis-cli → redis-server and psql → postgres: database attributes and processes', () => {
        const get = docs.find((d) => d.type === 'redis' && d.method === 'GET')!;
        const g = traceOf(get);
        assert.equal(g.client.resource['process.pid'], pids.redisGet);
        assert.equal(g.client.resource['service.name'], 'redis-cli');
        assert.equal(g.server.resource['process.pid'], redis.pid);
        assert.equal(g.server.resource['service.name'], 'redis-server');
        for (const s of [g.client, g.server]) {
          assert.equal(s.attributes['db.system.name'], 'redis');
          assert.equal(s.attributes['db.operation.name'], 'GET');
          assert.equal(s.attributes['db.query.text'], get.query);
          assert.equal(s.attributes['server.port'], REDIS_PORT);
        }
        const nope = docs.find((d) => d.type === 'pgsql' && d.query === 'SELECT * FROM otlp_nope')!;
        const n = traceOf(nope);
        assert.equal(n.client.resource['process.pid'], pids.psqlError);
        assert.equal(n.client.resource['service.name'], 'psql');
        // the backend forked for this connection, not the postmaster
        assert.equal(n.server.resource['process.pid'], nope.destination.process.pid);
        assert.equal(n.server.resource['service.name'], 'postgres');
        // read from /proc when the backend was still there (a short connection's may be gone)
        assert.equal(n.server.resource['process.executable.path'], nope.destination.process.executable);
        for (const s of [n.client, n.server]) {
          assert.equal(s.attributes['db.system.name'], 'postgresql');
          assert.equal(s.attributes['db.operation.name'], 'SELECT');
          assert.equal(s.attributes['db.namespace'], 'postgres');
          assert.equal(s.attributes['db.response.status_code'], '42P01');
          assert.equal(s.attributes['error.type'], '42P01');
          assert.equal(s.status.code, STATUS_ERROR);
          assert.match(s.status.message ?? '', /otlp_nope/);
        }
        const ok = traceOf(docs.find((d) => d.type === 'pgsql' && d.query === 'SELECT 42')!);
        assert.equal(ok.client.resource['process.pid'], pids.psqlOk);
        assert.equal(ok.client.attributes['db.response.returned_rows'], 1);
        assert.equal(ok.client.status.code, 0);
      });

      test('duration histograms per process: counts are the transactions\', buckets the conventions\'', () => {
        const points = collector.readMetrics();
        for (const p of points) assert.equal(p.unit, 's');
        const totals = histogramTotals(points, (p) => `${p.resource['process.pid']} ${p.name} ${p.attributes['http.response.status_code'] ?? p.attributes['db.operation.name'] ?? ''}`);
        // what the documents say each process recorded, per instrument and status code / operation
        const want = new Map<string, number>();
        for (const d of docs) {
          const detail = (side: 'client' | 'server') =>
            d.type === 'http'
              ? { name: `http.${side}.request.duration`, what: d.http.response?.status_code ?? '' }
              : { name: side === 'client' ? 'db.client.operation.duration' : 'packetbeat_ebpf.db.server.operation.duration', what: d.method ?? '' };
          for (const [side, pid] of [
            ['client', d.source.process.pid],
            ['server', d.destination.process.pid],
          ] as const) {
            const { name, what } = detail(side);
            const key = `${pid} ${name} ${what}`;
            want.set(key, (want.get(key) ?? 0) + 1);
          }
        }
        assert.deepEqual(new Map([...totals].sort()), new Map([...want].sort()));
        // and the processes we started are among them
        assert.equal(totals.get(`${nginx.pid} http.server.request.duration 200`), 3);
        assert.equal(totals.get(`${nginx.pid} http.server.request.duration 404`), 1);
        for (const pid of pids.hello) assert.equal(totals.get(`${pid} http.client.request.duration 200`), 1);
        assert.equal(totals.get(`${pids.redisGet} db.client.operation.duration GET`), 1);
        assert.equal(totals.get(`${redis.pid} packetbeat_ebpf.db.server.operation.duration GET`), 1);
        assert.equal(totals.get(`${redis.pid} packetbeat_ebpf.db.server.operation.duration SET`), 1);
        assert.ok((totals.get(`${pids.psqlError} db.client.operation.duration SELECT`) ?? 0) >= 1);
        const serverPoint = points.find((p) => p.name === 'http.server.request.duration')!;
        assert.deepEqual(serverPoint.bounds, HTTP_BUCKETS);
        assert.equal(serverPoint.resource['process.pid'], nginx.pid);
      });
    });
  }
});
