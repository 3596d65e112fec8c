/**
 * A real OpenTelemetry Collector (test/backends/otelcol, built by
 * scripts/otelcol.sh) on free loopback ports: the OTLP receiver over HTTP and
 * gRPC, the file exporter writing what it received as OTLP/JSON lines, which
 * the tests read back.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './agent';
import { freePort } from './net';

/** An OTLP attribute value, decoded. */
export type AttrValue = string | number | boolean | AttrValue[] | undefined;
export type Attrs = Record<string, AttrValue>;

export interface CollectedSpan {
  resource: Attrs;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Attrs;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
}

export interface CollectedHistogramPoint {
  resource: Attrs;
  name: string;
  unit: string;
  attributes: Attrs;
  startNs: bigint;
  timeNs: bigint;
  count: number;
  sum: number;
  bounds: number[];
  bucketCounts: number[];
}

export interface RunningCollector {
  /** Base URL of the OTLP/HTTP receiver (http://127.0.0.1:port). */
  httpEndpoint: string;
  /** URL of the OTLP/gRPC receiver (http://127.0.0.1:port). */
  grpcEndpoint: string;
  httpPort: number;
  grpcPort: number;
  pid: number;
  /** Every span the collector wrote so far. */
  readSpans(): CollectedSpan[];
  /** Every histogram data point the collector wrote so far (cumulative: one per export). */
  readMetrics(): CollectedHistogramPoint[];
  /** The collector's own log. */
  log(): string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
/** How often the file exporter flushes what it received. */
const FLUSH_INTERVAL = '100ms';

/** The collector binary, or why there is none (scripts/otelcol.sh builds it; test/run.sh calls it). */
export function collectorBinary(): { path: string } | { missing: string } {
  try {
    const out = execFileSync(path.join(REPO, 'scripts/otelcol.sh'), ['--path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { path: out.trim() };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { missing: (e.stderr || e.message).trim() };
  }
}

/** Skip reason for the collector tests, or false to run them. Under CI a missing collector is a failure. */
export function collectorSkip(): string | false {
  const bin = collectorBinary();
  if ('path' in bin) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true but the test collector is not built: ${bin.missing}`);
  return `the test OpenTelemetry Collector is not built (${bin.missing})`;
}

function decodeValue(v: Record<string, any> | undefined): AttrValue {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return (v.arrayValue.values ?? []).map(decodeValue);
  return undefined;
}

function decodeAttrs(list: Array<{ key: string; value: Record<string, any> }> | undefined): Attrs {
  return Object.fromEntries((list ?? []).map((a) => [a.key, decodeValue(a.value)]));
}

function readLines(file: string): Array<Record<string, any>> {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  // the last piece is a line still being written (or empty)
  lines.pop();
  return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, any>);
}

const collectors = new Set<{ kill(): void }>();
process.once('exit', () => {
  for (const c of collectors) c.kill();
});

export interface CollectorOptions {
  /** Receiver ports (default: free ones), e.g. the ports of a collector stopped before. */
  httpPort?: number;
  grpcPort?: number;
}

export async function startCollector(options: CollectorOptions = {}): Promise<RunningCollector> {
  const bin = collectorBinary();
  if (!('path' in bin)) throw new Error(bin.missing);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-otelcol-'));
  const httpPort = options.httpPort ?? (await freePort());
  const grpcPort = options.grpcPort ?? (await freePort());
  const traces = path.join(dir, 'traces.jsonl');
  const metrics = path.join(dir, 'metrics.jsonl');
  const config = path.join(dir, 'config.yaml');
  // JSON is YAML
  fs.writeFileSync(
    config,
    JSON.stringify({
      receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${grpcPort}` }, http: { endpoint: `127.0.0.1:${httpPort}` } } } },
      exporters: {
        'file/traces': { path: traces, flush_interval: FLUSH_INTERVAL },
        'file/metrics': { path: metrics, flush_interval: FLUSH_INTERVAL },
      },
      service: {
        // no listener of its own (its default :8888 would clash between collectors)
        telemetry: { metrics: { level: 'none' } },
        pipelines: {
          traces: { receivers: ['otlp'], exporters: ['file/traces'] },
          metrics: { receivers: ['otlp'], exporters: ['file/metrics'] },
        },
      },
    }),
  );
  const logFile = path.join(dir, 'collector.log');
  const logFd = fs.openSync(logFile, 'w');
  const child = spawn(bin.path, ['--config', config], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const handle = { kill: () => child.kill('SIGKILL') };
  collectors.add(handle);
  const log = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  // ready: the HTTP receiver accepts an (empty) export, the gRPC port accepts connections
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      collectors.delete(handle);
      throw new Error(`the collector exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log()}`);
    }
    const httpOk = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(1000),
    }).then(
      (r) => r.ok,
      () => false,
    );
    const grpcOk =
      httpOk &&
      (await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: grpcPort }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }));
    if (grpcOk) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      collectors.delete(handle);
      throw new Error(`the collector was not ready within ${READY_TIMEOUT_MS} ms:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    httpEndpoint: `http://127.0.0.1:${httpPort}`,
    grpcEndpoint: `http://127.0.0.1:${grpcPort}`,
    httpPort,
    grpcPort,
    pid: child.pid!,
    log,
    readSpans() {
      const out: CollectedSpan[] = [];
      for (const req of readLines(traces)) {
        for (const rs of req.resourceSpans ?? []) {
          const resource = decodeAttrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              out.push({
                resource,
                scope: ss.scope?.name ?? '',
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind ?? 0,
                startNs: BigInt(s.startTimeUnixNano),
                endNs: BigInt(s.endTimeUnixNano),
                attributes: decodeAttrs(s.attributes),
                status: { code: s.status?.code ?? 0, ...(s.status?.message ? { message: s.status.message } : {}) },
              });
            }
          }
        }
      }
      return out;
    },
    readMetrics() {
      const out: CollectedHistogramPoint[] = [];
      for (const req of readLines(metrics)) {
        for (const rm of req.resourceMetrics ?? []) {
          const resource = decodeAttrs(rm.resource?.attributes);
          for (const sm of rm.scopeMetrics ?? []) {
            for (const m of sm.metrics ?? []) {
              for (const p of m.histogram?.dataPoints ?? []) {
                out.push({
                  resource,
                  name: m.name,
                  unit: m.unit ?? '',
                  attributes: decodeAttrs(p.attributes),
                  startNs: BigInt(p.startTimeUnixNano ?? 0),
                  timeNs: BigInt(p.timeUnixNano ?? 0),
                  count: Number(p.count ?? 0),
                  sum: p.sum ?? 0,
                  bounds: p.explicitBounds ?? [],
                  bucketCounts: (p.bucketCounts ?? []).map(Number),
                });
              }
            }
          }
        }
      }
      return out;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS))]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      collectors.delete(handle);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The totals of cumulative histogram points: the latest point of each series
 * (resource pid, instrument, attributes, start time), summed by `keyOf`.
 */
export function histogramTotals(points: CollectedHistogramPoint[], keyOf: (p: CollectedHistogramPoint) => string): Map<string, number> {
  const latest = new Map<string, CollectedHistogramPoint>();
  for (const p of points) {
    const series = `${p.resource['process.pid'] ?? 'wire'} ${p.name} ${JSON.stringify(p.attributes)} ${p.startNs}`;
    const seen = latest.get(series);
    if (!seen || seen.timeNs <= p.timeNs) latest.set(series, p);
  }
  const out = new Map<string, number>();
  for (const p of latest.values()) out.set(keyOf(p), (out.get(keyOf(p)) ?? 0) + p.count);
  return out;
}

/** Poll until `pred` holds (the file exporter flushes every 100 ms). */
export async function waitUntil(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
