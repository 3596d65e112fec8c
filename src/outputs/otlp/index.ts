/**
 * The OTLP output: one span per view of each transaction and duration
 * histograms, per process (one Resource each), exported with the
 * OpenTelemetry JS SDK over OTLP (http/protobuf, http/json or grpc).
 *
 * Delivery: spans wait in one bounded queue (the SDK's batch span processor)
 * until the exporter answers; `full()` asks the capture to pause at half of
 * it (unless the last export failed: a dead collector must not stall the
 * capture for the other outputs), and past it a document's spans are dropped
 * and counted (its durations still reach the histograms). What the exporter
 * could not deliver, after its retries, is counted per document and reported
 * at close.
 */
import * as os from 'node:os';
import { diag, DiagLogLevel, ROOT_CONTEXT, trace, type DiagLogger } from '@opentelemetry/api';
import { ExportResultCode, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Config } from '../../config';
import type { TxnDocument } from '../../publish/document';
import type { Logger } from '../../util/logger';
import type { Output, OutputStats } from '../types';
import { describeDocument, type DescribeContext } from './describe';
import { createExporters, DEFAULT_ENDPOINTS, type Exporters, type OtlpProtocol } from './exporters';
import { createProcessRegistry, type ProcessTelemetry } from './processes';

export interface OtlpOutputOptions {
  protocol?: OtlpProtocol;
  /** Default: the protocol's conventional local endpoint. */
  endpoint?: string;
  headers?: Record<string, string>;
  /** Bound of one export attempt; failed gRPC exports are retried for as long again. */
  timeoutMs?: number;
  /** Spans per export request. */
  batchSize?: number;
  /** Longest a span waits for its batch to fill. */
  batchDelayMs?: number;
  /** Spans waiting for the exporter at most; `full()` at half. */
  queueSize?: number;
  metricsIntervalMs?: number;
  /** Processes with live providers at most (least recently used retired first). */
  maxProcesses?: number;
  /** A process without transactions this long is retired (its last metrics exported). */
  processIdleMs?: number;
  /** Longest attribute value (db.query.text, url.full...); longer ones are cut. */
  maxAttributeLength?: number;
  logger: Logger;
  hostName?: string;
  /** The exporters (default: from protocol/endpoint/headers); tests may pass the SDK's in-memory ones. */
  exporters?: Exporters;
}

export interface OtlpOutputStats extends OutputStats {
  /** Documents whose spans the exporter failed to deliver (included in `dropped`). */
  failed: number;
  /** Documents of a protocol with no OTLP mapping. */
  skipped: number;
  spans_exported: number;
  spans_failed: number;
  /** Spans refused at the queue bound (or after close). */
  spans_dropped: number;
  metric_exports: number;
  metric_export_failures: number;
  /** gRPC exports tried again after a retryable status. */
  retries: number;
  processes: number;
  processes_retired: number;
}

export interface OtlpOutput extends Output {
  stats(): OtlpOutputStats;
  /** Deliver what is held, export the last metrics, release the exporters. */
  close(): Promise<void>;
}

/** Backoff between retries of a failed gRPC export (the HTTP exporters retry by themselves). */
const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 5_000;
const RETRY_MULTIPLIER = 1.5;
/**
 * gRPC statuses worth retrying (OTLP's list): CANCELLED, DEADLINE_EXCEEDED,
 * RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
 */
const GRPC_RETRYABLE = new Set([1, 4, 8, 10, 11, 14, 15]);
const GRPC_UNAVAILABLE = 14;

/** Metric exports (one per process) running at once. */
const METRIC_EXPORT_CONCURRENCY = 4;
/** Least time between two log lines about the same kind of failure. */
const LOG_EVERY_MS = 10_000;

/** host.arch values of the conventions for Node's os.arch(). */
const HOST_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'x86', arm: 'arm32', ppc64: 'ppc64', s390x: 's390x' };

interface DocRecord {
  remaining: number;
  failed: boolean;
}

/** Logs at most once per LOG_EVERY_MS per kind, with how many were not logged. */
function rateLimited(log: Logger) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (kind: string, level: 'warn' | 'error', fields: object, msg: string) => {
    const now = Date.now();
    const l = last.get(kind);
    if (l && now - l.at < LOG_EVERY_MS) {
      l.suppressed++;
      return;
    }
    log[level]({ ...fields, ...(l?.suppressed ? { suppressed: l.suppressed } : {}) }, msg);
    last.set(kind, { at: now, suppressed: 0 });
  };
}

export function createOtlpOutput(options: OtlpOutputOptions): OtlpOutput {
  const {
    protocol = 'http/protobuf',
    endpoint = DEFAULT_ENDPOINTS[protocol],
    headers = {},
    timeoutMs = 10_000,
    batchSize = 512,
    batchDelayMs = 1_000,
    queueSize = 8_192,
    metricsIntervalMs = 60_000,
    maxProcesses = 256,
    processIdleMs = 5 * 60_000,
    maxAttributeLength = 8_192,
    logger,
    hostName = os.hostname(),
  } = options;
  const log = logger.child({ component: 'otlp', endpoint, protocol });
  const warnLimited = rateLimited(log);
  const exporterOptions = { protocol, endpoint, headers, timeoutMs };
  // replaced when a gRPC channel is stuck in its reconnect backoff (see sendWithRetry)
  const exporters: Exporters = { ...(options.exporters ?? createExporters(exporterOptions)) };
  const renewable = options.exporters === undefined && protocol === 'grpc';
  const renewedAt = { traces: 0, metrics: 0 };
  const describeCtx: DescribeContext = { hostName, hostArch: HOST_ARCH[os.arch()] ?? os.arch() };
  const highWater = Math.max(1, Math.floor(queueSize / 2));

  // the SDK's own diagnostics (retries, partial success) into our log, rate-limited
  const diagLogger: DiagLogger = {
    error: (msg, ...args) => warnLimited(`diag-error`, 'warn', { detail: args.map(String) }, `opentelemetry: ${msg}`),
    warn: (msg, ...args) => warnLimited(`diag-warn`, 'warn', { detail: args.map(String) }, `opentelemetry: ${msg}`),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  };
  diag.setLogger(diagLogger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  // the batch processor reports each failed export here too: counted and logged by us already
  setGlobalErrorHandler((err) => log.debug({ err }, 'opentelemetry error'));

  const stats = {
    published: 0,
    dropped: 0,
    failed: 0,
    skipped: 0,
    spans_exported: 0,
    spans_failed: 0,
    spans_dropped: 0,
    metric_exports: 0,
    metric_export_failures: 0,
    processes_retired: 0,
    retries: 0,
  };
  let spansInFlight = 0;
  let docsInFlight = 0;
  const spanDocs = new WeakMap<ReadableSpan, DocRecord>();
  const exportsInFlight = new Set<Promise<void>>();
  const retiring = new Set<Promise<void>>();
  let closing: Promise<void> | undefined;
  /** The last export failed (after its retries): the collector is likely unreachable. */
  let lastExportFailed = false;
  /** Closing with the collector unreachable: the last metrics are counted as failed, not tried. */
  let unreachableAtClose = false;

  /** Count each span's outcome, and each document's once all its spans are settled. */
  function settle(spans: ReadableSpan[], result: ExportResult): void {
    const ok = result.code === ExportResultCode.SUCCESS;
    lastExportFailed = !ok;
    for (const span of spans) {
      spansInFlight--;
      if (ok) stats.spans_exported++;
      else stats.spans_failed++;
      const rec = spanDocs.get(span);
      if (!rec) continue;
      if (!ok) rec.failed = true;
      if (--rec.remaining === 0) {
        docsInFlight--;
        if (rec.failed) {
          stats.failed++;
          stats.dropped++;
        }
      }
    }
    if (!ok) warnLimited('spans', 'error', { spans: spans.length, err: result.error?.message, failed_so_far: stats.spans_failed }, 'OTLP span export failed; spans lost');
  }

  /**
   * One export, retried while the failure is a retryable gRPC status and
   * timeoutMs has not passed since the first attempt: the gRPC exporter does
   * not retry (a collector restarting answers UNAVAILABLE for a moment); the
   * HTTP exporters retry 429/502-504 and connection errors themselves.
   */
  function sendWithRetry(kind: 'traces' | 'metrics', send: (cb: (r: ExportResult) => void) => void, done: (r: ExportResult) => void): void {
    const deadline = Date.now() + timeoutMs;
    let backoff = RETRY_INITIAL_MS;
    const attempt = () => {
      const onResult = (result: ExportResult) => {
        const code = (result.error as { code?: unknown } | undefined)?.code;
        const retryable = protocol === 'grpc' && result.code !== ExportResultCode.SUCCESS && typeof code === 'number' && GRPC_RETRYABLE.has(code);
        // closing: no new retries, so that the agent's exit waits one export attempt at most
        if (retryable && !closing && Date.now() + backoff < deadline) {
          stats.retries++;
          // UNAVAILABLE: grpc-js waits out its reconnect backoff (up to minutes) before it
          // tries the collector again; a new channel connects at once
          if (code === GRPC_UNAVAILABLE && renewable && Date.now() - renewedAt[kind] >= RETRY_INITIAL_MS) {
            renewedAt[kind] = Date.now();
            const old = exporters[kind];
            const fresh = createExporters(exporterOptions);
            if (kind === 'traces') exporters.traces = fresh.traces;
            else exporters.metrics = fresh.metrics;
            void old.shutdown().catch(() => undefined);
          }
          // not unref'd: a pending retry keeps a closing agent alive until it is settled
          setTimeout(attempt, backoff);
          backoff = Math.min(backoff * RETRY_MULTIPLIER, RETRY_MAX_MS);
          return;
        }
        done(result);
      };
      try {
        send(onResult);
      } catch (err) {
        onResult({ code: ExportResultCode.FAILED, error: err as Error });
      }
    };
    attempt();
  }

  // counts every export's outcome; the batch processor and the OTLP exporter do the rest
  const countingExporter: SpanExporter = {
    export(spans, done) {
      const exported = new Promise<void>((resolve) => {
        sendWithRetry(
          'traces',
          (cb) => exporters.traces.export(spans, cb),
          (result) => {
            settle(spans, result);
            resolve();
            done(result);
          },
        );
      });
      exportsInFlight.add(exported);
      void exported.finally(() => exportsInFlight.delete(exported));
    },
    shutdown: () => exporters.traces.shutdown(),
    forceFlush: () => exporters.traces.forceFlush?.() ?? Promise.resolve(),
  };
  const spanProcessor = new BatchSpanProcessor({
    exporter: countingExporter,
    maxQueueSize: queueSize,
    maxExportBatchSize: Math.min(batchSize, queueSize),
    scheduledDelayMillis: batchDelayMs,
    // each export is bounded by the exporter (timeoutMs) and our retries (timeoutMs more), and reported
    exportTimeoutMillis: timeoutMs * 3,
  });

  async function exportMetricsOf(p: ProcessTelemetry): Promise<void> {
    if (unreachableAtClose) {
      stats.metric_export_failures++;
      return;
    }
    let metrics: ResourceMetrics | undefined;
    try {
      metrics = await p.collect();
    } catch (err) {
      stats.metric_export_failures++;
      warnLimited('collect', 'error', { err: (err as Error).message }, 'collecting metrics failed');
      return;
    }
    if (!metrics) return;
    const m = metrics;
    const result = await new Promise<ExportResult>((resolve) => sendWithRetry('metrics', (cb) => exporters.metrics.export(m, cb), resolve));
    lastExportFailed = result.code !== ExportResultCode.SUCCESS;
    if (result.code === ExportResultCode.SUCCESS) stats.metric_exports++;
    else {
      stats.metric_export_failures++;
      warnLimited('metrics', 'error', { err: result.error?.message, failed_so_far: stats.metric_export_failures }, 'OTLP metric export failed');
    }
  }

  async function exportAllMetrics(list: ProcessTelemetry[]): Promise<void> {
    for (let i = 0; i < list.length; i += METRIC_EXPORT_CONCURRENCY) {
      await Promise.all(list.slice(i, i + METRIC_EXPORT_CONCURRENCY).map(exportMetricsOf));
    }
  }

  const registry = createProcessRegistry({
    spanProcessor,
    spanLimits: { attributeValueLengthLimit: maxAttributeLength },
    temporality: exporters.metrics.selectAggregationTemporality?.bind(exporters.metrics),
    maxProcesses,
    idleMs: processIdleMs,
    onRetire(p) {
      // flush before dropping: the process's last metrics, then its providers
      stats.processes_retired++;
      const done = exportMetricsOf(p)
        .then(() => p.shutdown())
        .catch((err) => warnLimited('retire', 'error', { err: (err as Error).message }, 'retiring a process failed'));
      retiring.add(done);
      void done.finally(() => retiring.delete(done));
    },
  });

  // one timer for every process's metrics; a round never overlaps the previous one
  let round: Promise<void> | undefined;
  const metricsTimer = setInterval(() => {
    if (round) return;
    round = exportAllMetrics(registry.live())
      .then(() => void registry.retireIdle())
      .finally(() => (round = undefined));
  }, metricsIntervalMs);
  metricsTimer.unref();

  function publishOne(doc: TxnDocument): void {
    const specs = describeDocument(doc, describeCtx);
    if (specs.length === 0) {
      stats.skipped++;
      return;
    }
    if (closing) {
      // closed: the providers are gone, nothing more is exported
      stats.dropped++;
      stats.spans_dropped += specs.length;
      return;
    }
    const telemetry = specs.map((s) => registry.get(s.resource));
    // durations reach the histograms whatever happens to the spans
    specs.forEach((s, i) => telemetry[i].histogram(s.metric.name).record(s.metric.durationS, s.metric.attributes));
    if (spansInFlight + specs.length > queueSize) {
      stats.dropped++;
      stats.spans_dropped += specs.length;
      warnLimited('queue', 'warn', { queued_spans: spansInFlight, dropped_so_far: stats.dropped }, 'OTLP span queue full; transaction spans dropped');
      return;
    }
    const rec: DocRecord = { remaining: specs.length, failed: false };
    stats.published++;
    docsInFlight++;
    spansInFlight += specs.length;
    // the client's span first: the server's is its child (one trace per transaction)
    let parent = ROOT_CONTEXT;
    const started = specs.map((s, i) => {
      const span = telemetry[i].tracer.startSpan(s.name, { kind: s.kind, startTime: s.start, attributes: s.attributes }, parent);
      span.setStatus(s.status);
      spanDocs.set(span as unknown as ReadableSpan, rec);
      if (s.side === 'client') parent = trace.setSpan(ROOT_CONTEXT, span);
      return span;
    });
    started.forEach((span, i) => span.end(specs[i].end));
  }

  async function flush(): Promise<void> {
    // failures are counted by the exporter wrapper; here only wait for them
    await spanProcessor.forceFlush().catch(() => undefined);
    while (exportsInFlight.size > 0) await Promise.all([...exportsInFlight]);
  }

  return {
    name: 'otlp',
    wantsViews: true,
    publish(docs) {
      for (const doc of docs) {
        try {
          publishOne(doc);
        } catch (err) {
          stats.dropped++;
          warnLimited('internal', 'error', { err }, 'building spans failed; transaction dropped');
        }
      }
    },
    flush,
    // backpressure while the collector answers; a failing one is not waited for (its spans are lost either way)
    full: () => !lastExportFailed && spansInFlight >= highWater,
    stats: () => ({ ...stats, queued: docsInFlight, processes: registry.size }),
    close() {
      closing ??= (async () => {
        clearInterval(metricsTimer);
        await flush();
        if (round) await round;
        // a collector that just failed is not waited for again (each try lasts up to timeoutMs)
        if (lastExportFailed && registry.size > 0) {
          unreachableAtClose = true;
          log.warn({ processes: registry.size }, 'OTLP collector unreachable at close; the last metrics of these processes are not sent');
        }
        registry.retireAll();
        while (retiring.size > 0) await Promise.all([...retiring]);
        await spanProcessor.shutdown().catch(() => undefined);
        await exporters.metrics.shutdown().catch(() => undefined);
        const final = { ...stats, queued: docsInFlight };
        if (final.dropped > 0 || final.metric_export_failures > 0 || final.queued > 0) {
          log.warn({ stats: final }, 'OTLP output closed; some transactions were not delivered');
        } else {
          log.info({ stats: final }, 'OTLP output closed; everything delivered');
        }
      })();
      return closing;
    },
  };
}

/** The output as `output.otlp` configures it. */
export function otlpOutputFromConfig(c: Config['output']['otlp'], logger: Logger): OtlpOutput {
  return createOtlpOutput({
    protocol: c.protocol,
    endpoint: c.endpoint,
    headers: c.headers,
    timeoutMs: c.timeout_ms,
    batchSize: c.batch_size,
    batchDelayMs: c.batch_delay_ms,
    queueSize: c.queue_size,
    metricsIntervalMs: c.metrics_interval_ms,
    maxProcesses: c.max_processes,
    processIdleMs: c.process_idle_s * 1000,
    logger,
  });
}
