/**
 * The clients' wiring, without a cluster: the Elasticsearch and OpenSearch outputs
 * talk to a local HTTP server that answers with bulk responses recorded from a real
 * node (test/fixtures/bulk/responses.json, by test/fixtures/record-bulk.ts), and
 * checks what the clients send (headers, auth, the bulk body). The real engine is
 * exercised by test/integration/opensearch-*.test.ts (and elasticsearch-output with ES_URL).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { validateConfig } from '../../../src/config';
import type { DeliveryOutput } from '../../../src/outputs/delivery/delivery';
import { createElasticsearchOutput } from '../../../src/outputs/elasticsearch';
import { closeOutputs } from '../../../src/outputs';
import { createOpenSearchOutput } from '../../../src/outputs/opensearch';
import { captureLog } from '../../helpers/log';

const RECORDED = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../test/fixtures/bulk/responses.json'), 'utf8')) as Record<
  'allCreated' | 'mixed' | 'tooLarge',
  { status: number; body: unknown }
>;

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  lines: string[];
}

type Answer = { status: number; body: unknown; headers?: Record<string, string> };

/** A server that records requests and answers from a script (default: all created). */
function startServer() {
  const seen: Seen[] = [];
  const script: Array<(s: Seen) => Answer> = [];
  const state = { product: 'Elasticsearch' as string | undefined };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, lines: body.split('\n').filter(Boolean) };
      seen.push(s);
      const answer: Answer = (script.shift() ?? (() => RECORDED.allCreated))(s);
      const headers: Record<string, string> = { 'content-type': 'application/json', ...answer.headers };
      if (state.product) headers['x-elastic-product'] = state.product;
      res.writeHead(answer.status, headers);
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
  });
  return {
    seen,
    script,
    state,
    listen: () => new Promise<string>((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const doc = (n: number) => ({ '@timestamp': '2026-01-01T00:00:00.000Z', event: { id: `r${n}` }, network: { protocol: 'http' } });
const common = { flush_interval_ms: 10, backoff: { init_ms: 10, max_ms: 20 }, spool: { enabled: false }, timeout_ms: 2000 };
const waitUntil = async (pred: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('Elasticsearch client wiring', () => {
  const server = startServer();
  let url = '';
  const made: DeliveryOutput[] = [];
  before(async () => {
    url = await server.listen();
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((o) => o.close()));
    server.seen.length = 0;
    server.script.length = 0;
    server.state.product = 'Elasticsearch';
  });
  after(() => server.close());

  function output(extra: Record<string, unknown> = {}) {
    const log = captureLog();
    const cfg = validateConfig({ output: { elasticsearch: { hosts: [url], api_key: 'aWQ6c2VjcmV0', ...common, ...extra } } }, 't');
    const out = createElasticsearchOutput(cfg.output.elasticsearch!, log.logger);
    made.push(out);
    return { out, log };
  }

  test('one bulk request of create actions with the ids, API key auth, compatible-with=8 headers', async () => {
    const { out } = output();
    out.publish([doc(1), doc(2)]);
    await out.flush();
    assert.equal(out.stats().created, 2);
    const [req] = server.seen;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/_bulk');
    assert.equal(req.headers.authorization, 'ApiKey aWQ6c2VjcmV0');
    assert.equal(req.headers['content-type'], 'application/vnd.elasticsearch+x-ndjson; compatible-with=8');
    assert.match(String(req.headers.accept), /application\/vnd\.elasticsearch\+json; compatible-with=8/);
    assert.deepEqual(req.lines.map((l) => JSON.parse(l)), [
      { create: { _index: 'packetbeat-ebpf-http', _id: 'r1' } },
      doc(1),
      { create: { _index: 'packetbeat-ebpf-http', _id: 'r2' } },
      doc(2),
    ]);
  });

  test('a recorded mixed answer: 409 → duplicate, 201 → created, 400 mapping error → rejected with its error', async () => {
    const { out, log } = output();
    server.script.push(() => RECORDED.mixed);
    out.publish([doc(1), doc(3), doc(4)]);
    await out.flush();
    const s = out.stats();
    assert.deepEqual([s.duplicates, s.created, s.rejected, s.retried], [1, 1, 1, 0]);
    const sample = log.lines.find((l) => /rejected documents/.test(l.msg))!;
    assert.equal(sample.id, 'r4');
    assert.equal(sample.error.type, 'mapper_parsing_exception');
    assert.equal(server.seen.length, 1, 'nothing sent again');
  });

  test('a recorded 413: the batch is halved and sent again', async () => {
    const { out } = output();
    server.script.push(() => RECORDED.tooLarge);
    out.publish([doc(1), doc(2), doc(3), doc(4)]);
    await out.flush();
    assert.deepEqual(server.seen.map((r) => r.lines.length / 2), [4, 2, 2]);
    assert.equal(out.stats().created, 4);
  });

  test('503 and 429 on the request, then success: retried with backoff, counted', async () => {
    const { out } = output();
    server.script.push(() => ({ status: 503, body: { error: { type: 'unavailable_shards_exception', reason: 'x' }, status: 503 } }));
    server.script.push(() => ({ status: 429, body: { error: { type: 'es_rejected_execution_exception', reason: 'queue full' }, status: 429 } }));
    out.publish([doc(1), doc(2)]);
    await out.flush();
    const s = out.stats();
    assert.equal(s.failed_requests, 2);
    assert.equal(s.retried, 4);
    assert.equal(s.created, 2);
    assert.equal(server.seen.length, 3);
  });

  test('a server that is not Elasticsearch (no x-elastic-product): not delivered, retried, the reason logged', async () => {
    const { out, log } = output();
    server.state.product = undefined;
    out.publish([doc(1)]);
    await waitUntil(() => out.stats().failed_requests >= 2);
    assert.equal(out.stats().created, 0);
    const warn = log.lines.find((l) => /cannot deliver/.test(l.msg))!;
    assert.match(warn.reason, /ProductNotSupportedError/);
    server.state.product = 'Elasticsearch';
    await out.flush();
    assert.equal(out.stats().created, 1);
  });

  test('nothing listening: a connection error, retried; closing spools nothing (spool disabled) and counts the loss', async () => {
    const cfg = validateConfig({ output: { elasticsearch: { hosts: ['http://127.0.0.1:1'], ...common } } }, 't');
    const log = captureLog();
    const out = createElasticsearchOutput(cfg.output.elasticsearch!, log.logger);
    out.publish([doc(1), doc(2)]);
    await waitUntil(() => out.stats().failed_requests >= 1);
    assert.match(log.lines.find((l) => /cannot deliver/.test(l.msg))!.reason, /ConnectionError/);
    await out.close();
    assert.equal(out.stats().dropped, 2);
  });
});

describe('OpenSearch client wiring', () => {
  const server = startServer();
  let url = '';
  before(async () => {
    url = await server.listen();
    server.state.product = undefined; // OpenSearch sends none
  });
  after(() => server.close());

  test('basic auth, plain JSON media types, the same bulk body and answers', async () => {
    const cfg = validateConfig({ output: { opensearch: { hosts: [url], username: 'admin', password: 's3cret', ...common } } }, 't');
    const out = createOpenSearchOutput(cfg.output.opensearch!, captureLog().logger);
    server.script.push(() => RECORDED.mixed);
    out.publish([doc(1), doc(3), doc(4)]);
    await out.flush();
    await out.close();
    const [req] = server.seen;
    assert.equal(req.url, '/_bulk');
    assert.equal(req.headers.authorization, `Basic ${Buffer.from('admin:s3cret').toString('base64')}`);
    assert.doesNotMatch(String(req.headers['content-type']), /compatible-with/);
    assert.deepEqual(JSON.parse(req.lines[0]), { create: { _index: 'packetbeat-ebpf-http', _id: 'r1' } });
    const s = out.stats();
    assert.deepEqual([s.duplicates, s.created, s.rejected], [1, 1, 1]);
  });
});

describe('TLS: the CA file given is trusted, nothing else is', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  let url = '';
  let server: https.Server;
  before(async () => {
    // a self-signed certificate for 127.0.0.1, its own CA
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
        res.end(JSON.stringify(RECORDED.allCreated.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, make] of [
    ['elasticsearch', createElasticsearchOutput],
    ['opensearch', createOpenSearchOutput],
  ] as const) {
    test(`${name}: with ssl.certificate_authorities the request goes through; without, a certificate error is retried`, async () => {
      const trusted = validateConfig({ output: { [name]: { hosts: [url], ssl: { certificate_authorities: [cert] }, ...common } } }, 't').output[name]!;
      const ok = make(trusted, captureLog().logger);
      ok.publish([doc(1), doc(2)]);
      await ok.flush();
      assert.equal(ok.stats().created, 2);
      await ok.close();

      const log = captureLog();
      const untrusted = validateConfig({ output: { [name]: { hosts: [url], ...common } } }, 't').output[name]!;
      const refused = make(untrusted, log.logger);
      refused.publish([doc(1)]);
      await waitUntil(() => refused.stats().failed_requests >= 1);
      assert.equal(refused.stats().created, 0);
      assert.match(log.lines.find((l) => /cannot deliver/.test(l.msg))!.reason, /self[- ]signed|certificate/i);
      await refused.close();
    });
  }
});

describe('a backend that accepts connections and never answers', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-silent-'));
  const silent = net.createServer(() => undefined);
  let url = '';
  before(async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  after(() => {
    silent.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, make] of [
    ['elasticsearch', createElasticsearchOutput],
    ['opensearch', createOpenSearchOutput],
  ] as const) {
    test(`${name}: the bounded shutdown flush, then close cuts the request (timeout_ms 30 s) and the batch is in the spool`, async () => {
      const cfg = validateConfig({ output: { [name]: { hosts: [url], flush_interval_ms: 10, spool: { dir: path.join(dir, name) } } } }, 't').output[name]!;
      const log = captureLog();
      const out = make(cfg, log.logger);
      out.publish([doc(1), doc(2)]);
      await new Promise((r) => setTimeout(r, 200)); // the request is on its way
      const t0 = Date.now();
      await closeOutputs([out], 1000);
      const took = Date.now() - t0;
      assert.ok(took < 5000, `close took ${took} ms`);
      assert.equal(out.stats().spool_docs, 2);
      assert.equal(out.stats().dropped, 0);
      assert.ok(log.lines.some((l) => /1 in the spool|2 in the spool/.test(l.msg)));
    });
  }
});
