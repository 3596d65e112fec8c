/** The per-process registry: bounded, least recently used out first, idle processes retired. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { createProcessRegistry, type ProcessTelemetry } from '../../../../src/outputs/otlp/processes';

function registry(maxProcesses: number, idleMs: number) {
  let clock = 1_000;
  const retired: string[] = [];
  const r = createProcessRegistry({
    spanProcessor: new BatchSpanProcessor({ exporter: new InMemorySpanExporter() }),
    spanLimits: {},
    maxProcesses,
    idleMs,
    onRetire: (p: ProcessTelemetry) => retired.push(p.key),
    now: () => clock,
  });
  const res = (key: string) => ({ key, attributes: { 'process.pid': Number(key) } });
  return { r, retired, res, advance: (ms: number) => (clock += ms) };
}

test('the same key gives the same telemetry; past the bound the least recently used is retired', () => {
  const { r, retired, res } = registry(2, 60_000);
  const a = r.get(res('1'));
  r.get(res('2'));
  assert.equal(r.get(res('1')), a); // 1 is now the most recently used
  r.get(res('3'));
  assert.deepEqual(retired, ['2']);
  assert.equal(r.size, 2);
  assert.deepEqual(r.live().map((p) => p.key), ['1', '3']);
});

test('processes unused for idleMs are retired, the others kept', () => {
  const { r, retired, res, advance } = registry(10, 5_000);
  r.get(res('1'));
  r.get(res('2'));
  advance(3_000);
  r.get(res('2'));
  advance(3_000);
  assert.equal(r.retireIdle(), 1);
  assert.deepEqual(retired, ['1']);
  r.retireAll();
  assert.deepEqual(retired, ['1', '2']);
  assert.equal(r.size, 0);
});

test('a process with no recorded duration has no metrics to export', async () => {
  const { r, res } = registry(2, 1000);
  const p = r.get(res('7'));
  assert.equal(await p.collect(), undefined);
  p.histogram('http.server.request.duration').record(0.25, { 'http.request.method': 'GET' });
  const rm = await p.collect();
  assert.equal(rm?.resource.attributes['process.pid'], 7);
  const [metric] = rm!.scopeMetrics[0].metrics;
  assert.equal(metric.descriptor.name, 'http.server.request.duration');
  assert.equal(metric.descriptor.unit, 's');
  await p.shutdown();
});
