/**
 * One Resource per traced process: a TracerProvider and a MeterProvider for
 * each, created when the process is first seen, bounded in number (least
 * recently used first out) and retired when idle. Cheap by construction:
 * every TracerProvider shares the one batch span processor (so one queue and
 * one exporter serve all processes, and the OTLP request groups spans by
 * Resource), and every MeterProvider has a pull-only reader that the output
 * collects on its own single timer. Retiring a process hands it back to the
 * output, which exports its last metrics before shutting it down.
 */
import type { Histogram, Tracer } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  MeterProvider,
  MetricReader,
  type AggregationTemporalitySelector,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { TracerProvider, type SpanLimits, type SpanProcessor } from '@opentelemetry/sdk-trace';
import {
  METRIC_DB_CLIENT_OPERATION_DURATION,
  METRIC_HTTP_CLIENT_REQUEST_DURATION,
  METRIC_HTTP_SERVER_REQUEST_DURATION,
} from '@opentelemetry/semantic-conventions';
import { AGENT_VERSION } from '../../publish/document';
import type { ProcessResource } from './describe';
import { DB_DURATION_BUCKETS, HTTP_DURATION_BUCKETS, METRIC_DB_SERVER_OPERATION_DURATION } from './semconv';

/** Instrumentation scope of everything the agent exports. */
export const SCOPE_NAME = 'packetbeat-ebpf';

const INSTRUMENTS: Record<string, { description: string; buckets: number[] }> = {
  [METRIC_HTTP_SERVER_REQUEST_DURATION]: { description: 'Duration of HTTP server requests.', buckets: HTTP_DURATION_BUCKETS },
  [METRIC_HTTP_CLIENT_REQUEST_DURATION]: { description: 'Duration of HTTP client requests.', buckets: HTTP_DURATION_BUCKETS },
  [METRIC_DB_CLIENT_OPERATION_DURATION]: { description: 'Duration of database client operations.', buckets: DB_DURATION_BUCKETS },
  [METRIC_DB_SERVER_OPERATION_DURATION]: {
    description: 'Duration of database operations as the database server saw them (first request byte read to last response byte written).',
    buckets: DB_DURATION_BUCKETS,
  },
};

/** A reader collected by the output's own timer, never on its own. */
class PulledReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

export interface ProcessTelemetry {
  readonly key: string;
  readonly tracer: Tracer;
  /** The duration histogram of that name (created on first use). */
  histogram(name: string): Histogram;
  /** This process's metrics now; undefined when it has recorded none. */
  collect(): Promise<ResourceMetrics | undefined>;
  /** Release the providers (the shared span processor stays). */
  shutdown(): Promise<void>;
}

export interface ProcessRegistryOptions {
  spanProcessor: SpanProcessor;
  spanLimits: SpanLimits;
  temporality?: AggregationTemporalitySelector;
  /** Live processes at most; past it the least recently used is retired. */
  maxProcesses: number;
  /** A process unused this long is retired by `retireIdle`. */
  idleMs: number;
  /** Called with every retired process (evicted, idle, or at close). */
  onRetire(p: ProcessTelemetry): void;
  now?: () => number;
}

export interface ProcessRegistry {
  /** The telemetry of a process, created on first use; marks it used. */
  get(resource: ProcessResource): ProcessTelemetry;
  /** Retire the processes unused for idleMs; how many. */
  retireIdle(): number;
  /** Retire every process (close). */
  retireAll(): void;
  live(): ProcessTelemetry[];
  readonly size: number;
}

function createProcessTelemetry(resource: ProcessResource, options: ProcessRegistryOptions): ProcessTelemetry {
  const res = resourceFromAttributes(resource.attributes);
  const tracerProvider = new TracerProvider({ resource: res, spanProcessors: [options.spanProcessor], spanLimits: options.spanLimits });
  const reader = new PulledReader({ aggregationTemporalitySelector: options.temporality });
  const meterProvider = new MeterProvider({ resource: res, readers: [reader] });
  const meter = meterProvider.getMeter(SCOPE_NAME, AGENT_VERSION);
  const histograms = new Map<string, Histogram>();
  return {
    key: resource.key,
    tracer: tracerProvider.getTracer(SCOPE_NAME, AGENT_VERSION),
    histogram(name) {
      let h = histograms.get(name);
      if (!h) {
        const spec = INSTRUMENTS[name];
        h = meter.createHistogram(name, {
          unit: 's',
          description: spec?.description,
          advice: spec ? { explicitBucketBoundaries: spec.buckets } : undefined,
        });
        histograms.set(name, h);
      }
      return h;
    },
    async collect() {
      if (histograms.size === 0) return undefined;
      const { resourceMetrics } = await reader.collect();
      return resourceMetrics.scopeMetrics.some((s) => s.metrics.length > 0) ? resourceMetrics : undefined;
    },
    // the TracerProvider is only dropped: its shutdown would shut the shared processor down
    shutdown: () => meterProvider.shutdown(),
  };
}

export function createProcessRegistry(options: ProcessRegistryOptions): ProcessRegistry {
  const { maxProcesses, idleMs, onRetire, now = Date.now } = options;
  // insertion order = least recently used first
  const entries = new Map<string, { telemetry: ProcessTelemetry; usedMs: number }>();
  return {
    get(resource) {
      const t = now();
      const found = entries.get(resource.key);
      if (found) {
        found.usedMs = t;
        entries.delete(resource.key);
        entries.set(resource.key, found);
        return found.telemetry;
      }
      while (entries.size >= maxProcesses) {
        const [oldestKey, oldest] = entries.entries().next().value!;
        entries.delete(oldestKey);
        onRetire(oldest.telemetry);
      }
      const telemetry = createProcessTelemetry(resource, options);
      entries.set(resource.key, { telemetry, usedMs: t });
      return telemetry;
    },
    retireIdle() {
      const cutoff = now() - idleMs;
      let n = 0;
      for (const [key, e] of entries) {
        if (e.usedMs > cutoff) break; // the rest were used later
        entries.delete(key);
        onRetire(e.telemetry);
        n++;
      }
      return n;
    },
    retireAll() {
      const all = [...entries.values()];
      entries.clear();
      for (const e of all) onRetire(e.telemetry);
    },
    live: () => [...entries.values()].map((e) => e.telemetry),
    get size() {
      return entries.size;
    },
  };
}
