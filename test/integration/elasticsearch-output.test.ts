/**
 * The Elasticsearch output against a real Elasticsearch (8.x or 9.x), which cannot
 * run on the project's machines: set ES_URL (and ES_API_KEY, or ES_USERNAME and
 * ES_PASSWORD; ES_CA for a CA file; ES_SSL_VERIFY=none for a self-signed test
 * cluster). Without ES_URL these tests are skipped, saying so.
 * Everything is written under pbe-es-test-<pid>-* and removed afterwards.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config';
import type { DeliveryOutput } from '../../src/outputs/delivery/delivery';
import { createElasticsearchOutput } from '../../src/outputs/elasticsearch';
import { kernelCapture, startAgent } from '../helpers/agent';
import { allDocs, call, count, eventually, putTestTemplate, type SearchTarget } from '../helpers/search';
import { startNginx } from '../helpers/servers';
import { captureLog } from '../helpers/log';

const ES_URL = process.env.ES_URL;
const skip = ES_URL ? false : 'ES_URL is not set (e.g. ES_URL=https://localhost:9200 ES_API_KEY=... to run these against a real Elasticsearch)';
const PREFIX = `pbe-es-test-${process.pid}`;
const NGINX_PORT = 18091;

/** The output's connection settings from the environment. */
function connection(): Record<string, unknown> {
  const c: Record<string, unknown> = { hosts: [ES_URL] };
  if (process.env.ES_API_KEY) c.api_key = process.env.ES_API_KEY;
  else if (process.env.ES_USERNAME) Object.assign(c, { username: process.env.ES_USERNAME, password: process.env.ES_PASSWORD ?? '' });
  const ssl: Record<string, unknown> = {};
  if (process.env.ES_CA) ssl.certificate_authorities = [process.env.ES_CA];
  if (process.env.ES_SSL_VERIFY === 'none') ssl.verification_mode = 'none';
  return { ...c, ssl };
}

/** The same credentials for the test's own REST calls. */
function target(): SearchTarget {
  const headers: Record<string, string> = {};
  if (process.env.ES_API_KEY) headers.authorization = `ApiKey ${process.env.ES_API_KEY}`;
  else if (process.env.ES_USERNAME) headers.authorization = `Basic ${Buffer.from(`${process.env.ES_USERNAME}:${process.env.ES_PASSWORD ?? ''}`).toString('base64')}`;
  if (process.env.ES_SSL_VERIFY === 'none') process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  return { url: (ES_URL ?? '').replace(/\/+$/, ''), headers };
}

let n = 0;
const txnDoc = (extra: Record<string, unknown> = {}) => {
  n++;
  return { '@timestamp': new Date(Date.UTC(2026, 0, 1) + n).toISOString(), event: { id: `${PREFIX}-${n}`, duration: 1000 * n }, network: { protocol: 'http' }, url: { path: `/p/${n}` }, ...extra };
};

describe('Elasticsearch output → a real Elasticsearch (ES_URL)', { skip }, () => {
  const es = target();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-es-output-'));
  const outputs: DeliveryOutput[] = [];

  function output(index: string) {
    const log = captureLog();
    const cfg = validateConfig(
      { output: { elasticsearch: { ...connection(), index, flush_interval_ms: 50, backoff: { init_ms: 100, max_ms: 500 }, spool: { dir: path.join(tmp, `spool-${outputs.length}`) } } } },
      'test',
    );
    const out = createElasticsearchOutput(cfg.output.elasticsearch!, log.logger);
    outputs.push(out);
    return { out, log };
  }

  before(async () => {
    const info = await call(es, 'GET', '/');
    assert.equal(info.status, 200, `cannot reach ${ES_URL}: ${JSON.stringify(info.json)}`);
    await putTestTemplate(es, `${PREFIX}-ok`, `${PREFIX}-ok-*`, { event: { properties: { id: { type: 'keyword' }, duration: { type: 'long' } } } });
    await putTestTemplate(es, `${PREFIX}-reject`, `${PREFIX}-reject-*`, { url: { properties: { path: { type: 'boolean' } } } });
  });

  after(async () => {
    await Promise.all(outputs.map((o) => o.close()));
    for (const ds of [`${PREFIX}-ok-*`, `${PREFIX}-reject-*`]) await call(es, 'DELETE', `/_data_stream/${ds}`);
    for (const t of [`${PREFIX}-ok`, `${PREFIX}-reject`]) await call(es, 'DELETE', `/_index_template/${t}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('documents land in the data stream under their event.id; sent again, they are duplicates', async () => {
    const { out } = output(`${PREFIX}-ok-%{[network.protocol]}`);
    const docs = [txnDoc(), txnDoc(), txnDoc()];
    out.publish(docs);
    await out.flush();
    assert.equal(out.stats().created, 3);
    const hits = await allDocs(es, `${PREFIX}-ok-http`);
    assert.deepEqual(hits.map((h) => h._id), docs.map((d) => d.event.id));
    assert.deepEqual(hits[0]._source, docs[0]);
    out.publish(docs);
    await out.flush();
    assert.equal(out.stats().duplicates, 3);
    assert.equal(await count(es, `${PREFIX}-ok-http`), 3);
  });

  test('a mapping conflict: rejected, counted, one sample logged, not retried', async () => {
    const { out, log } = output(`${PREFIX}-reject-%{[network.protocol]}`);
    out.publish([txnDoc(), txnDoc({ url: undefined })]);
    await out.flush();
    const s = out.stats();
    assert.deepEqual([s.rejected, s.created, s.retried], [1, 1, 0]);
    const sample = log.lines.find((l) => /rejected documents for their content/.test(l.msg))!;
    assert.equal(sample.status, 400);
    assert.match(sample.error.type, /document_parsing_exception|mapper_parsing_exception/);
  });

  test('run --es: curl → nginx transactions indexed with their processes', { skip: kernelCapture().ok ? false : 'needs root and syscall tracepoints' }, async () => {
    const nginx = await startNginx(NGINX_PORT);
    const index = `${PREFIX}-ok-run`;
    const agent = await startAgent({
      protocols: { http: { ports: [NGINX_PORT] } },
      infer_protocols: false,
      stats_interval_s: 0,
      output: { elasticsearch: { ...connection(), index, flush_interval_ms: 200, spool: { dir: path.join(tmp, 'spool-run') } } },
    });
    try {
      const pids: number[] = [];
      for (let i = 0; i < 5; i++) {
        const c = spawn('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${NGINX_PORT}/hello?es=${i}`], { stdio: 'ignore' });
        await new Promise((r) => c.on('exit', r));
        pids.push(c.pid!);
      }
      const hits = await eventually('the transactions', () => allDocs(es, index), (h) => h.length >= 5, 30_000);
      assert.deepEqual(hits.map((h) => h._source.url.query).sort(), ['es=0', 'es=1', 'es=2', 'es=3', 'es=4']);
      for (const h of hits) {
        assert.equal(h._id, h._source.event.id);
        assert.equal(h._source.source.process.pid, pids[Number(h._source.url.query.slice(3))]);
        assert.equal(h._source.destination.process.pid, nginx.pid);
      }
    } finally {
      agent.child.kill('SIGTERM');
      const exit = await agent.exited;
      await nginx.stop();
      assert.equal(exit.code, 0, agent.stderr.join('\n'));
    }
  });
});
