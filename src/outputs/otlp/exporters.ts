/**
 * The OpenTelemetry JS exporters for one endpoint and protocol: they own the
 * OTLP encoding (protobuf or JSON), the transport (HTTP or gRPC) and the retry
 * with backoff of retryable answers (429, 502-504, gRPC UNAVAILABLE...), each
 * export bounded by the timeout.
 */
import { Metadata } from '@grpc/grpc-js';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { OTLP_PROTOCOLS } from '../../config';

export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** The conventional endpoints of a local collector (OTEL_EXPORTER_OTLP_ENDPOINT's defaults). */
export const DEFAULT_ENDPOINTS: Record<OtlpProtocol, string> = {
  'http/protobuf': 'http://localhost:4318',
  'http/json': 'http://localhost:4318',
  grpc: 'http://localhost:4317',
};

export interface ExporterOptions {
  protocol: OtlpProtocol;
  /** Base URL: http(s)://host:port[/path]; HTTP adds /v1/traces and /v1/metrics. */
  endpoint: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

export interface Exporters {
  traces: SpanExporter;
  metrics: PushMetricExporter;
}

/** `http://host:4318/` + `v1/traces` (the base URL's path kept, as OTEL_EXPORTER_OTLP_ENDPOINT does). */
export function signalUrl(endpoint: string, signal: 'traces' | 'metrics'): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/${signal}`;
}

export function createExporters({ protocol, endpoint, headers, timeoutMs }: ExporterOptions): Exporters {
  if (protocol === 'grpc') {
    const metadata = () => {
      const m = new Metadata();
      for (const [k, v] of Object.entries(headers)) m.set(k, v);
      return m;
    };
    return {
      traces: new GrpcTraceExporter({ url: endpoint, metadata: metadata(), timeoutMillis: timeoutMs }),
      metrics: new GrpcMetricExporter({ url: endpoint, metadata: metadata(), timeoutMillis: timeoutMs }),
    };
  }
  const common = { headers, timeoutMillis: timeoutMs };
  if (protocol === 'http/json') {
    return {
      traces: new JsonTraceExporter({ ...common, url: signalUrl(endpoint, 'traces') }),
      metrics: new JsonMetricExporter({ ...common, url: signalUrl(endpoint, 'metrics') }),
    };
  }
  return {
    traces: new ProtoTraceExporter({ ...common, url: signalUrl(endpoint, 'traces') }),
    metrics: new ProtoMetricExporter({ ...common, url: signalUrl(endpoint, 'metrics') }),
  };
}
