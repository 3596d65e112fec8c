/**
 * The OTLP output on real documents, through the SDK's batch processor into
 * the SDK's in-memory exporters (what reaches a real collector is the
 * acceptance test's job, test/integration/otlp.test.ts): one trace per
 * transaction, a Resource per process, histograms per process, the queue
 * bound, and failed exports (a real OTLP exporter against a closed port)
 * counted and reported.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import pino from 'pino';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, type Histogram, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { SpanKind } from '@opentelemetry/api';
import { createOtlpOutput, type OtlpOutputOptions } from '../../../../src/outputs/otlp';
import { createExporters } from '../../../../src/outputs/otlp/exporters';
import { createLogger, type Logger } from '../../../../src/util/logger';
import { recordedHttpDocuments, type Doc } from './documents';

function memoryExporters() {
  return { traces: new InMemorySpanExporter(), metrics: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE) };
}

function capturingLogger(): { logger: Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/**
 * Recorded durations per process pid and instrument. Exports are cumulative:
 * the last export of each series (process, instrument, attributes, start time)
 * holds its total; a process retired and seen again starts a new series.
 */
function histogramCounts(exported: ResourceMetrics[]): Map<string, number> {
  const series = new Map<string, { key: string; count: number }>();
  for (const rm of exported) {
    const pid = rm.resource.attributes['process.pid'] ?? 'wire';
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        assert.equal(m.dataPointType, DataPointType.HISTOGRAM);
        assert.equal(m.descriptor.unit, 's');
        for (const p of m.dataPoints) {
          const key = `${pid} ${m.descriptor.name}`;
          series.set(`${key} ${JSON.stringify(p.attributes)} ${p.startTime.join('.')}`, { key, count: (p.value as Histogram).count });
        }
      }
    }
  }
  const out = new Map<string, number>();
  for (const { key, count } of series.values()) out.set(key, (out.get(key) ?? 0) + count);
  return out;
}

/** What the documents should have recorded, in histogramCounts' terms. */
function expectedCounts(docs: Doc[]): Map<string, number> {
  const want = new Map<string, number>();
  const add = (k: string) => want.set(k, (want.get(k) ?? 0) + 1);
  for (const d of docs) {
    add(`${d.source.process.pid} http.client.request.duration`);
    add(`${d.destination.process.pid} http.server.request.duration`);
  }
  return want;
}

const sorted = (m: Map<string, number>) => new Map([...m].sort());

function output(extra: Partial<OtlpOutputOptions> = {}) {
  const exporters = memoryExporters();
  const out = createOtlpOutput({ logger: createLogger('silent'), exporters, hostName: 'test-host', ...extra });
  return { out, exporters };
}

describe('OTLP output: the recorded HTTP session', () => {
  test('one trace per transaction: the server span is the client span\'s child; each span has its process\'s Resource', async () => {
    const { out, exporters } = output({ batchDelayMs: 10 });
    const docs = recordedHttpDocuments({}, [out]);
    await out.flush();
    const spans = exporters.traces.getFinishedSpans();
    assert.equal(spans.length, 2 * docs.length);
    const byTrace = new Map<string, ReadableSpan[]>();
    for (const s of spans) byTrace.set(s.spanContext().traceId, [...(byTrace.get(s.spanContext().traceId) ?? []), s]);
    assert.equal(byTrace.size, docs.length);
    for (const pair of byTrace.values()) {
      const client = pair.find((s) => s.kind === SpanKind.CLIENT)!;
      const server = pair.find((s) => s.kind === SpanKind.SERVER)!;
      assert.ok(client && server);
      assert.equal(client.parentSpanContext, undefined);
      assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
      // the document of this transaction: same client port, and its processes
      const doc = docs.find((d) => d.source.port === server.attributes['client.port'])!;
      assert.ok(doc, 'a document for every trace');
      assert.equal(client.resource.attributes['process.pid'], doc.source.process.pid);
      assert.equal(server.resource.attributes['process.pid'], doc.destination.process.pid);
      assert.equal(client.instrumentationScope.name, 'packetbeat-ebpf');
    }
    const s = out.stats();
    assert.equal(s.published, docs.length);
    assert.equal(s.spans_exported, 2 * docs.length);
    assert.equal(s.dropped, 0);
    assert.equal(s.queued, 0);
    await out.close();
  });

  test('duration histograms per process and instrument, exported at close', async () => {
    const { out, exporters } = output();
    const docs = recordedHttpDocuments({}, [out]);
    await out.close();
    assert.deepEqual(sorted(histogramCounts(exporters.metrics.getMetrics())), sorted(expectedCounts(docs)));
    assert.equal(out.stats().metric_export_failures, 0);
  });

  test('at most max_processes live; the least recently used is retired with its metrics exported first', async () => {
    const { out, exporters } = output({ maxProcesses: 2 });
    const docs = recordedHttpDocuments({}, [out]);
    assert.ok(out.stats().processes <= 2);
    const pids = new Set(docs.flatMap((d) => [d.source.process.pid, d.destination.process.pid]));
    assert.ok(pids.size > 2);
    await out.close();
    assert.ok(out.stats().processes_retired >= pids.size);
    // every process's durations were exported before its providers were dropped: none lost, none twice
    assert.deepEqual(sorted(histogramCounts(exporters.metrics.getMetrics())), sorted(expectedCounts(docs)));
  });
});

describe('OTLP output: bounds and failures', () => {
  test('past the queue bound spans are dropped and counted, the durations still reach the histograms', async () => {
    const { out, exporters } = output({ queueSize: 4, batchDelayMs: 60_000 });
    const docs = recordedHttpDocuments({}, [out]);
    const before = out.stats();
    // two documents (four spans) fit; the capture is asked to pause from two spans on
    assert.equal(before.published, 2);
    assert.equal(before.dropped, docs.length - 2);
    assert.equal(before.spans_dropped, 2 * (docs.length - 2));
    assert.equal(before.queued, 2);
    assert.equal(out.full?.(), true);
    await out.flush();
    assert.equal(out.full?.(), false);
    assert.equal(exporters.traces.getFinishedSpans().length, 4);
    assert.equal(out.stats().queued, 0);
    await out.close();
    assert.deepEqual(sorted(histogramCounts(exporters.metrics.getMetrics())), sorted(expectedCounts(docs)));
  });

  test('an unreachable collector: every span and metric export fails, counted per document and reported at close', async () => {
    // a port nobody listens on
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const { logger, lines } = capturingLogger();
    const exporters = createExporters({ protocol: 'http/protobuf', endpoint: `http://127.0.0.1:${port}`, headers: {}, timeoutMs: 500 });
    const out = createOtlpOutput({ logger, exporters, batchDelayMs: 10 });
    const docs: Doc[] = recordedHttpDocuments({}, [out]);
    await out.flush();
    const s = out.stats();
    assert.equal(s.published, docs.length);
    assert.equal(s.failed, docs.length);
    assert.equal(s.dropped, docs.length);
    assert.equal(s.spans_failed, 2 * docs.length);
    assert.equal(s.spans_exported, 0);
    assert.equal(s.queued, 0);
    await out.close();
    assert.ok(out.stats().metric_export_failures > 0);
    assert.equal(out.stats().metric_exports, 0);
    const failure = lines.find((l) => l.msg === 'OTLP span export failed; spans lost');
    assert.ok(failure, JSON.stringify(lines));
    assert.match(failure.err, /ECONNREFUSED|connect/i);
    const closed = lines.find((l) => l.msg === 'OTLP output closed; some transactions were not delivered');
    assert.ok(closed, JSON.stringify(lines.map((l) => l.msg)));
    assert.equal(closed.level, 40);
    assert.equal(closed.stats.failed, docs.length);
  });

  test('after close, documents are dropped and counted, never exported', async () => {
    const { out, exporters } = output();
    await out.close();
    recordedHttpDocuments({}, [out]);
    assert.equal(out.stats().published, 0);
    assert.equal(out.stats().dropped, 12);
    assert.equal(exporters.traces.getFinishedSpans().length, 0);
    assert.equal(out.stats().processes, 0);
  });
});
