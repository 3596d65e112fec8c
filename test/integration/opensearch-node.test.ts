import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openSearchSkip, startOpenSearch, type OpenSearchNode } from '../helpers/opensearch';
import { allDocs } from '../helpers/search';

const skip = openSearchSkip();

async function call(node: OpenSearchNode, method: string, route: string, body?: unknown): Promise<{ status: number; json: any }> {
  const ndjson = Array.isArray(body);
  const res = await fetch(node.url + route, {
    method,
    headers: { 'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
    body: body === undefined ? undefined : ndjson ? body.map((l) => JSON.stringify(l) + '\n').join('') : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe('the OpenSearch test node (harness)', { skip }, () => {
  let node: OpenSearchNode;

  before(async () => {
    node = await startOpenSearch();
  });
  after(async () => {
    await node?.close();
  });

  test('answers on loopback as OpenSearch 2.19 with one node', async () => {
    assert.match(node.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const { json: info } = await call(node, 'GET', '/');
    assert.equal(info.version.distribution, 'opensearch');
    assert.match(info.version.number, /^2\.19\./);
    const { json: health } = await call(node, 'GET', '/_cluster/health');
    assert.equal(health.number_of_nodes, 1);
    assert.ok(['yellow', 'green'].includes(health.status), health.status);
  });

  test('indexes into a data stream, searches and aggregates', async () => {
    const tpl = await call(node, 'PUT', '/_index_template/harness-test', {
      index_patterns: ['harness-test-*'],
      data_stream: {},
      template: { settings: { number_of_replicas: 0 }, mappings: { properties: { 'event.duration': { type: 'long' } } } },
    });
    assert.equal(tpl.status, 200, JSON.stringify(tpl.json));
    const docs = [10, 20, 30, 40].map((d, i) => ({ '@timestamp': new Date(1_700_000_000_000 + i).toISOString(), event: { duration: d } }));
    const bulk = await call(node, 'POST', '/harness-test-a/_bulk?refresh=true', [
      ...docs.flatMap((d, i) => [{ create: { _id: `id-${i}` } }, d]),
      { create: { _id: 'id-0' } },
      docs[0],
    ]);
    assert.equal(bulk.status, 200);
    assert.deepEqual(bulk.json.items.map((i: any) => i.create.status), [201, 201, 201, 201, 409]);
    const search = await call(node, 'POST', '/harness-test-a/_search', {
      size: 0,
      aggs: { max: { max: { field: 'event.duration' } }, sum: { sum: { field: 'event.duration' } } },
    });
    assert.equal(search.json.hits.total.value, 4);
    assert.equal(search.json.aggregations.max.value, 40);
    assert.equal(search.json.aggregations.sum.value, 100);
  });

  test('the tests read back every document, past one page of 10,000 (scrolled)', async () => {
    const n = 10_050;
    const lines = Array.from({ length: n }, (_, i) => [
      { index: { _id: `doc-${i}` } },
      { '@timestamp': new Date(1_700_000_000_000 + i).toISOString() },
    ]).flat();
    const bulk = await call(node, 'POST', '/harness-many/_bulk', lines);
    assert.equal(bulk.status, 200);
    assert.equal(bulk.json.errors, false);
    const hits = await allDocs(node, 'harness-many');
    assert.equal(hits.length, n);
    assert.equal(new Set(hits.map((h) => h._id)).size, n);
    assert.equal(hits[n - 1]._id, `doc-${n - 1}`, 'in @timestamp order');
    assert.deepEqual(await allDocs(node, 'harness-none'), []);
  });

  test('stop and start keep the port and the data', async () => {
    await node.stop();
    await assert.rejects(fetch(node.url));
    await node.start();
    const count = await call(node, 'GET', '/harness-test-a/_count');
    assert.equal(count.json.count, 4);
  });
});
