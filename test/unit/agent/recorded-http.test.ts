import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { createPipeline } from '../../../src/agent/pipeline';
import { createRecordingSource, readRecording, RecordingError } from '../../../src/capture/recording';
import { validateConfig } from '../../../src/config';
import { createProcessCache } from '../../../src/conn/process-info';
import type { Output } from '../../../src/outputs/types';
import type { TxnDocument } from '../../../src/publish/document';
import { createLogger } from '../../../src/util/logger';

// recorded by test/fixtures/record-http.ts from real nginx, node, curl and fetch
const FIXTURE = path.resolve(__dirname, '../../../../test/fixtures/http-loopback');

type Doc = Record<string, any>;

/** What must be identical between the live agent and a replay of its events. */
function essence(d: Doc) {
  return {
    query: d.query,
    full: d.url?.full,
    status: d.status,
    code: d.http?.response?.status_code,
    reqBytes: d.http?.request?.bytes,
    resBytes: d.http?.response?.bytes,
    resBody: d.http?.response?.body?.bytes ?? 0,
    client: [d.source.ip, d.source.port, d.source.process?.pid, d.source.process?.name],
    server: [d.destination.ip, d.destination.port, d.destination.process?.pid, d.destination.process?.name],
    duration: d.event.duration,
    serverDuration: d.packetbeat_ebpf.server_duration,
    views: d.packetbeat_ebpf.views,
    error: d.error?.message,
  };
}

const order = (a: ReturnType<typeof essence>, b: ReturnType<typeof essence>) =>
  JSON.stringify([a.client[1], a.full]).localeCompare(JSON.stringify([b.client[1], b.full]));

test('replaying recorded kernel events gives the documents the live agent printed', () => {
  const recording = readRecording(path.join(FIXTURE, 'events.pberec'));
  const live = fs.readFileSync(path.join(FIXTURE, 'live.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Doc);
  const docs: TxnDocument[] = [];
  const output: Output = { name: 'test', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: 0, dropped: 0, queued: 0 }) };
  const emptyProc = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-noproc-'));
  const pipeline = createPipeline({
    config: validateConfig({ protocols: { http: { ports: [18180, 18181] } }, join_window_ms: 300 }, 'test'),
    outputs: [output],
    // the recorded processes are gone: names from the kernel, paths and args from exec events
    processes: createProcessCache({ procRoot: emptyProc }),
    logger: createLogger('silent'),
    toWallMs: (ns) => recording.header.wallMs + (ns - recording.header.monoNs) / 1e6,
  });
  createRecordingSource(recording).start(pipeline);
  pipeline.flush();
  fs.rmSync(emptyProc, { recursive: true });

  assert.equal(live.length, 12);
  assert.deepEqual((docs as Doc[]).map(essence).sort(order), live.map(essence).sort(order));
  assert.equal(pipeline.stats().parseErrors, 0);
  // every transaction joined both ends, and curl's path came from its exec event
  for (const d of docs as Doc[]) assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
  const curlDoc = (docs as Doc[]).find((d) => d.source.process.name === 'curl');
  assert.equal(curlDoc?.source.process.executable, '/usr/bin/curl');
  const queries = (docs as Doc[]).map((d) => `${d.query}${d.url.query ? `?${d.url.query}` : ''} ${d.http.response?.status_code ?? '-'}`).sort();
  assert.deepEqual(queries, [
    'GET /big 200',
    'GET /big.bin 200',
    'GET /hello 200',
    'GET /hello 200',
    'GET /hello?n=1 200',
    'GET /hello?n=2 200',
    'GET /hello?p=1 200',
    'GET /hello?p=2 200',
    'GET /missing 404',
    'GET /never -',
    'HEAD /hello 200',
    'POST /hello?name=value&x=1 200', // form parameters in url.query, as Packetbeat reports them
  ]);
});

test('a file that is not a recording is refused with a clear error', () => {
  const f = path.join(os.tmpdir(), `pbe-not-a-recording-${process.pid}`);
  fs.writeFileSync(f, 'GET / HTTP/1.1\r\n\r\n');
  assert.throws(() => readRecording(f), RecordingError);
  fs.rmSync(f);
});
