/**
 * The OpenSearch output against a real OpenSearch node (no kernel needed): the
 * client, the bulk helper, data streams, 409 duplicates, mapping rejections, and
 * an outage with the node stopped and started again.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config';
import { createOpenSearchOutput } from '../../src/outputs/opensearch';
import type { Output } from '../../src/outputs/types';
import { BIN, REPO } from '../helpers/agent';
import { openSearchSkip, startOpenSearch, type OpenSearchNode } from '../helpers/opensearch';
import { allDocs, call, count, eventually, putTestTemplate } from '../helpers/search';
import { captureLog } from '../helpers/log';

const skip = openSearchSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let docNo = 0;
/** A transaction document as the agent makes them (the fields these tests look at). */
function txnDoc(protocol = 'http', extra: Record<string, unknown> = {}) {
  const n = ++docNo;
  return {
    '@timestamp': new Date(Date.UTC(2026, 0, 1) + n).toISOString(),
    event: { id: `it-${process.pid}-${n}`, duration: 1000 * n, kind: 'event' },
    network: { protocol, transport: 'tcp' },
    url: { path: `/p/${n}` },
    process: { name: n % 2 ? 'nginx' : 'node', pid: 100 + (n % 2) },
    n,
    ...extra,
  };
}

describe('OpenSearch output → a real OpenSearch node', { skip }, () => {
  let node: OpenSearchNode;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-os-output-'));
  const outputs: Output[] = [];

  function output(overrides: Record<string, unknown> = {}) {
    const log = captureLog();
    const cfg = validateConfig(
      {
        output: {
          opensearch: {
            hosts: [node.url],
            flush_interval_ms: 50,
            backoff: { init_ms: 100, max_ms: 500 },
            timeout_ms: 5000,
            spool: { dir: path.join(tmp, `spool-${outputs.length}`) },
            ...overrides,
          },
        },
      },
      'test',
    );
    const out = createOpenSearchOutput(cfg.output.opensearch!, log.logger);
    outputs.push(out);
    return { out, log, cfg: cfg.output.opensearch! };
  }

  before(async () => {
    node = await startOpenSearch();
    await putTestTemplate(node, 'pbe-test', 'packetbeat-ebpf-*', {
      event: { properties: { id: { type: 'keyword' }, duration: { type: 'long' } } },
      process: { properties: { name: { type: 'keyword' } } },
    });
    await putTestTemplate(node, 'pbe-reject', 'pbe-reject-*', { url: { properties: { path: { type: 'boolean' } } } });
  });
  after(async () => {
    await Promise.all(outputs.map((o) => o.close?.()));
    await node?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('documents land in the per-protocol data stream under their event.id, typed by the template', async () => {
    const { out } = output();
    const docs = [txnDoc('http'), txnDoc('http'), txnDoc('redis')];
    out.publish(docs);
    await out.flush();
    assert.equal(out.stats().published, 3);
    const http = await allDocs(node, 'packetbeat-ebpf-http');
    assert.deepEqual(http.map((h) => h._id), [docs[0].event.id, docs[1].event.id]);
    assert.match(http[0]._index, /^\.ds-packetbeat-ebpf-http-/);
    assert.deepEqual(http[0]._source, docs[0]);
    const redis = await allDocs(node, 'packetbeat-ebpf-redis');
    assert.deepEqual(redis.map((h) => h._id), [docs[2].event.id]);
    const ds = await call(node, 'GET', '/_data_stream/packetbeat-ebpf-http');
    assert.equal(ds.json.data_streams[0].name, 'packetbeat-ebpf-http');
    const mapping = await call(node, 'GET', '/packetbeat-ebpf-http/_mapping/field/event.duration');
    assert.equal((Object.values(mapping.json)[0] as any).mappings['event.duration'].mapping.duration.type, 'long');
    // an aggregation per process over what was indexed
    const agg = await call(node, 'POST', '/packetbeat-ebpf-http/_search', {
      size: 0,
      aggs: { by: { terms: { field: 'process.name' }, aggs: { p: { percentiles: { field: 'event.duration', percents: [50] } } } } },
    });
    const buckets = Object.fromEntries(agg.json.aggregations.by.buckets.map((b: any) => [b.key, b.p.values['50.0']]));
    const byName = (name: string) => docs.filter((d) => d.network.protocol === 'http' && d.process.name === name).map((d) => d.event.duration);
    assert.deepEqual(buckets, { [docs[0].process.name]: byName(docs[0].process.name)[0], [docs[1].process.name]: byName(docs[1].process.name)[0] });
  });

  test('the same documents again (a replay after a crash): 409 duplicates, no second copy', async () => {
    const { out } = output();
    const docs = [txnDoc(), txnDoc(), txnDoc()];
    out.publish(docs);
    await out.flush();
    const before = await count(node, 'packetbeat-ebpf-http');
    out.publish([...docs, txnDoc()]);
    await out.flush();
    const s = out.stats();
    assert.equal(s.created, 4);
    assert.equal(s.duplicates, 3);
    assert.equal(s.published, 7);
    assert.equal(await count(node, 'packetbeat-ebpf-http'), before + 1);
  });

  test('a mapping conflict: those documents rejected, counted, one sample logged, the others indexed, nothing retried', async () => {
    const { out, log } = output({ index: 'pbe-reject-%{[network.protocol]}' });
    // url.path is a boolean in this template: "/p/…" cannot be indexed, a document without url can
    const bad = [txnDoc(), txnDoc()];
    const good = { ...txnDoc(), url: undefined };
    out.publish([bad[0], good, bad[1]]);
    await out.flush();
    await sleep(300);
    const s = out.stats();
    assert.equal(s.rejected, 2);
    assert.equal(s.created, 1);
    assert.equal(s.retried, 0);
    assert.equal(s.failed_requests, 0);
    const samples = log.lines.filter((l) => /rejected documents for their content/.test(l.msg));
    assert.equal(samples.length, 1);
    assert.equal(samples[0].status, 400);
    assert.match(samples[0].error.type, /mapper_parsing_exception|document_parsing_exception/);
    assert.equal(samples[0].id, bad[0].event.id);
    assert.deepEqual((await allDocs(node, 'pbe-reject-http')).map((h) => h._id), [good.event.id]);
  });

  test('outage: the node stops while documents keep coming, starts again: every document exactly once, through the spool', async () => {
    const { out, log, cfg } = output({ queue: { max_bytes: 64 * 1024 }, index: 'packetbeat-ebpf-outage' });
    const sent: string[] = [];
    let producing = true;
    const producer = (async () => {
      while (producing) {
        const batch = Array.from({ length: 20 }, () => txnDoc('http', { pad: 'x'.repeat(300) }));
        sent.push(...batch.map((d) => d.event.id));
        out.publish(batch);
        await sleep(20);
      }
    })();
    await eventually('documents before the outage', () => count(node, 'packetbeat-ebpf-outage'), (n) => n > 100);
    await node.stop();
    await eventually('failed requests', async () => out.stats().failed_requests, (n) => n > 0, 10_000);
    await eventually('batches spooled', async () => out.stats().spool_docs, (n) => n > 200, 20_000);
    await node.start();
    await sleep(1000);
    producing = false;
    await producer;
    await out.flush();
    await eventually('every document', async () => out.stats().published, (n) => n === sent.length, 60_000);
    const hits = await allDocs(node, 'packetbeat-ebpf-outage');
    const ids = hits.map((h) => h._id);
    assert.equal(ids.length, sent.length, `indexed ${ids.length} of ${sent.length}`);
    assert.equal(new Set(ids).size, ids.length, 'no document twice');
    assert.deepEqual(new Set(ids), new Set(sent));
    const s = out.stats();
    assert.ok(s.spooled > 200, `spooled ${s.spooled}`);
    assert.equal(s.dropped, 0);
    assert.equal(s.rejected, 0);
    assert.equal(s.spool_docs, 0);
    assert.deepEqual(fs.readdirSync(cfg.spool.dir!).filter((f) => f.endsWith('.batch')), []);
    assert.ok(log.lines.some((l) => /cannot deliver to the backend/.test(l.msg) && /ConnectionError|NoLivingConnections|ECONNREFUSED/.test(l.reason)));
    assert.ok(log.lines.some((l) => l.msg === 'delivering again'));
  });

  test('spooled at stop, sent by the next output on the same spool directory', async () => {
    const dir = path.join(tmp, 'restart-spool');
    await node.stop();
    const first = output({ spool: { dir }, index: 'packetbeat-ebpf-restart' });
    const docs = Array.from({ length: 30 }, () => txnDoc());
    first.out.publish(docs);
    await eventually('a failed request', async () => first.out.stats().failed_requests, (n) => n > 0, 10_000);
    await first.out.close();
    assert.equal(first.out.stats().spool_docs, 30);
    assert.ok(fs.readdirSync(dir).some((f) => f.endsWith('.batch')));
    await node.start();
    const second = output({ spool: { dir }, index: 'packetbeat-ebpf-restart' });
    await eventually('the spooled documents', () => count(node, 'packetbeat-ebpf-restart'), (n) => n === 30, 30_000);
    assert.deepEqual(new Set((await allDocs(node, 'packetbeat-ebpf-restart')).map((h) => h._id)), new Set(docs.map((d) => d.event.id)));
    await eventually('the spool emptied', async () => second.out.stats().spool_docs, (n) => n === 0, 5000);
  });

  test('replay --opensearch URL --no-console: a capture\'s transactions indexed, the same ids as on stdout', async () => {
    const pcap = path.join(REPO, 'test/fixtures/pcap/http.pcap');
    const { port } = JSON.parse(fs.readFileSync(path.join(REPO, 'test/fixtures/pcap/http.expected.json'), 'utf8')) as { port: number };
    const config = path.join(tmp, 'replay.yml');
    fs.writeFileSync(config, JSON.stringify({ output: { opensearch: { hosts: ['http://unused:1'], index: 'packetbeat-ebpf-replay', spool: { dir: path.join(tmp, 'replay-spool') } } } }));
    const printed = execFileSync(process.execPath, [BIN, 'replay', pcap, '--ports', `http=${port}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const stdout = execFileSync(process.execPath, [BIN, 'replay', pcap, '-c', config, '--ports', `http=${port}`, '--opensearch', node.url, '--no-console'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(stdout, '');
    const hits = await allDocs(node, 'packetbeat-ebpf-replay');
    assert.equal(hits.length, printed.length);
    assert.deepEqual(new Set(hits.map((h) => h._id)), new Set(printed.map((d) => d.event.id)));
  });
});
