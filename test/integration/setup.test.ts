/**
 * Acceptance: `packetbeat-ebpf setup` against a real OpenSearch node (and a
 * real Elasticsearch / Kibana when ES_URL / KIBANA_URL are set):
 *
 * - setup runs twice with the same result (idempotent), the template is the
 *   generated one, the ISM step says why no policy was installed;
 * - documents the agent produced from known traffic (every capture the tests
 *   use) are indexed into the packetbeat-ebpf-<protocol> data streams without
 *   a single rejection, and the mapping read back has the inventory's types;
 * - every dashboard panel's aggregation, run on the node, returns the buckets
 *   and values computed here from the documents themselves;
 * - a data stream created with an older mapping gets the new fields, or rolls
 *   over when a type changed; clear exit codes for the wrong product and an
 *   unreachable dashboards server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIELDS, FREE_FORM } from '../../src/publish/fields';
import { PANELS } from '../../src/setup/dashboards';
import { EXIT_CODES } from '../../src/setup/errors';
import { exportFiles } from '../../src/setup/export';
import { buildIndexTemplate, DEFAULT_LIFECYCLE, TEMPLATE_NAME } from '../../src/setup/index-template';
import { panelQuery, SEARCH_ROWS, type SearchPanel, type VisualizationPanel } from '../../src/setup/panels';
import { buildSavedObjects, DATA_VIEW_ID } from '../../src/setup/saved-objects';
import { BIN } from '../helpers/agent';
import { allDocuments, knownTrafficDocuments, type SourcedDocument } from '../helpers/all-documents';
import { mappedType } from '../helpers/mapping';
import { openSearchSkip, startOpenSearch, type OpenSearchNode } from '../helpers/opensearch';
import { compareAggregation, expectedBuckets, matchesFilter, percentileBracket } from '../helpers/panel-eval';

type Json = Record<string, any>;
type Doc = Record<string, unknown>;

const INTERVAL = '1h';
const INTERVAL_MS = 3_600_000;
const SETUP_TIMEOUT_MS = 120_000;

/** A cluster the test talks to directly (to read back what setup did). */
interface Backend {
  url: string;
  headers: Record<string, string>;
}

async function call(b: Backend, method: string, route: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const ndjson = Array.isArray(body);
  const res = await fetch(b.url + route, {
    method,
    headers: { ...b.headers, 'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
    body: body === undefined ? undefined : ndjson ? body.map((l) => JSON.stringify(l) + '\n').join('') : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Json) : {} };
}

/** Run the CLI; stdout lines and the exit code. */
function runSetup(args: string[]): Promise<{ code: number; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'setup', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), SETUP_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, lines: out.trim().split('\n').filter(Boolean), stderr: err });
    });
  });
}

/** Index documents into packetbeat-ebpf-<protocol> (or `stream`); every item must be created. */
async function bulkIndex(b: Backend, docs: Doc[], stream?: string): Promise<void> {
  const BATCH = 200;
  for (let i = 0; i < docs.length; i += BATCH) {
    const lines = docs.slice(i, i + BATCH).flatMap((d) => [{ create: { _index: stream ?? `packetbeat-ebpf-${(d.network as Json).protocol}` } }, d]);
    const { status, json } = await call(b, 'POST', '/_bulk', lines);
    assert.equal(status, 200, JSON.stringify(json).slice(0, 500));
    const failed = (json.items as Json[]).filter((it) => it.create.status !== 201);
    assert.deepEqual(failed.slice(0, 3).map((it) => it.create.error), [], `${failed.length} documents rejected`);
  }
  assert.equal((await call(b, 'POST', '/packetbeat-ebpf-*/_refresh')).status, 200);
}

/** Every leaf path of a mapping (multi-fields as path.sub). */
function mappedPaths(props: Json, prefix = '', out: string[] = []): string[] {
  for (const [k, v] of Object.entries(props)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (v.properties) mappedPaths(v.properties, p, out);
    else out.push(p);
    for (const sub of Object.keys(v.fields ?? {})) out.push(`${p}.${sub}`);
  }
  return out;
}

/** The checks every backend gets: setup twice, template, documents, mapping, panels. */
function acceptance(name: string, flavor: 'opensearch' | 'elasticsearch', backend: () => Backend, setupArgs: () => string[]) {
  let known: SourcedDocument[] = [];
  let docs: Doc[] = [];

  before(async () => {
    known = await knownTrafficDocuments();
    docs = known.map((k) => k.doc as Doc);
  });

  test(`${name}: setup installs the lifecycle step and the template, twice with the same result`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-setup-export-'));
    const first = await runSetup([...setupArgs(), '--export', dir]);
    assert.equal(first.code, 0, `${first.lines.join('\n')}\n${first.stderr}`);
    const second = await runSetup(setupArgs());
    assert.equal(second.code, 0, `${second.lines.join('\n')}\n${second.stderr}`);
    // the export is the generated files
    for (const [file, content] of exportFiles(DEFAULT_LIFECYCLE)) assert.equal(fs.readFileSync(path.join(dir, file), 'utf8'), content, file);
    fs.rmSync(dir, { recursive: true });
    const cluster = second.lines.filter((l) => l.startsWith(`${flavor}:`));
    assert.deepEqual(first.lines.filter((l) => l.startsWith(`${flavor}:`)), cluster, 'same steps, same outcome');
    assert.match(cluster[0], new RegExp(`^${flavor}: connect: ok: ${flavor} \\d+\\.\\d+\\.\\d+`));
    if (flavor === 'opensearch') {
      // this node has no index-management plugin: setup says so instead of failing
      const ism = cluster.find((l) => l.includes('ISM policy'));
      assert.ok(ism?.includes('skipped') || ism?.includes(': ok:'), ism);
      if (ism?.includes('skipped')) assert.match(ism, /index-management \(ISM\) plugin is not installed on this cluster: no lifecycle policy installed/);
    } else assert.ok(cluster.some((l) => l === 'elasticsearch: ILM policy: ok: packetbeat-ebpf installed'), cluster.join('\n'));
    assert.ok(cluster.some((l) => l.startsWith(`${flavor}: index template: ok: packetbeat-ebpf`)), cluster.join('\n'));

    const { status, json } = await call(backend(), 'GET', `/_index_template/${TEMPLATE_NAME}`);
    assert.equal(status, 200);
    const stored = json.index_templates[0].index_template;
    const generated = buildIndexTemplate(flavor) as Json;
    assert.deepEqual(stored.index_patterns, generated.index_patterns);
    assert.equal(stored.priority, generated.priority);
    assert.equal(stored.version, generated.version);
    assert.ok(stored.data_stream, 'data stream template');
    for (const [p, def] of Object.entries(FIELDS)) assert.equal(mappedType(stored.template.mappings, p), def.type, `template ${p}`);
  });

  test(`${name}: every document from known traffic is indexed, into packetbeat-ebpf-<protocol>`, async () => {
    assert.ok(docs.length > 200, `${docs.length} documents`);
    await bulkIndex(backend(), docs);
    const { json } = await call(backend(), 'GET', '/_data_stream/packetbeat-ebpf-*');
    assert.deepEqual((json.data_streams as Json[]).map((d) => d.name).sort(), ['packetbeat-ebpf-http', 'packetbeat-ebpf-mysql', 'packetbeat-ebpf-pgsql', 'packetbeat-ebpf-redis']);
    const count = await call(backend(), 'GET', '/packetbeat-ebpf-*/_count');
    assert.equal(count.json.count, docs.length);
  });

  test(`${name}: the mapping read back has the inventory's types, and nothing mapped by guess`, async () => {
    const { json } = await call(backend(), 'GET', '/packetbeat-ebpf-http/_mapping');
    const mappings = (Object.values(json)[0] as Json).mappings as Json;
    const expect: Record<string, string> = {
      '@timestamp': 'date',
      'event.duration': 'long',
      'source.ip': 'ip',
      'destination.ip': 'ip',
      'related.ip': 'ip',
      'process.name': 'keyword',
      'source.process.name': 'keyword',
      'http.response.status_code': 'long',
      query: 'keyword',
      'query.text': 'text',
      'url.path': 'keyword',
      'http.request.headers.content-length': 'long',
      // headers the captures carried, mapped by the dynamic template
      'http.request.headers.user-agent': 'keyword',
      'http.response.headers.server': 'keyword',
    };
    for (const [p, type] of Object.entries(expect)) assert.equal(mappedType(mappings, p), type, p);
    const unexpected = mappedPaths(mappings.properties).filter((p) => {
      if (FIELDS[p] || (p.endsWith('.text') && FIELDS[p.slice(0, -5)]?.text)) return false;
      return !Object.keys(FREE_FORM).some((o) => p.startsWith(`${o}.`));
    });
    assert.deepEqual(unexpected, []);
    assert.deepEqual(mappings.properties.http.properties.request.properties.headers.properties['content-type'], { type: 'keyword', ignore_above: 1024 });
  });

  for (const panel of PANELS) {
    test(`${name}: panel "${panel.title}" returns what the documents say`, async () => {
      const { status, json } = await call(backend(), 'POST', '/packetbeat-ebpf-*/_search', panelQuery(panel, { interval: INTERVAL }));
      assert.equal(status, 200, JSON.stringify(json).slice(0, 500));
      const matching = docs.filter((d) => matchesFilter(d, panel.filter));
      assert.equal(json.hits.total.value, matching.length, 'documents matching the panel filter');
      if (panel.kind === 'search') {
        checkSearch(panel, json, matching);
        return;
      }
      const expected = expectedBuckets(panel, matching, INTERVAL_MS);
      assert.ok(expected.length > 0, `${panel.id}: the known traffic has data for this panel`);
      compareAggregation(panel, json.aggregations, expected);
    });
  }

  test(`${name}: per-process latency: p50/p95/p99 per serving and per calling process`, async () => {
    for (const field of ['process.name', 'source.process.name']) {
      const panel = PANELS.find((p) => p.kind === 'visualization' && p.buckets[0].field === field && p.buckets.length === 1) as VisualizationPanel;
      const { json } = await call(backend(), 'POST', '/packetbeat-ebpf-*/_search', panelQuery(panel));
      const buckets = json.aggregations[Object.keys(json.aggregations)[0]].buckets as Json[];
      const names = buckets.map((b) => b.key).sort();
      const want = field === 'process.name' ? ['mariadbd', 'nginx', 'node', 'postgres', 'redis-server'] : ['curl', 'mysql', 'node', 'psql', 'redis-cli'];
      assert.deepEqual(names, want, field);
      for (const b of buckets) {
        const durations = docs.filter((d) => (field === 'process.name' ? (d.process as Json)?.name : (d.source as Json).process?.name) === b.key).map((d) => (d.event as Json).duration as number);
        assert.equal(b.doc_count, durations.length, `${field}=${b.key}`);
        for (const p of [50, 95, 99]) {
          const [lo, hi] = percentileBracket(durations, p);
          const v = (Object.values(b).find((x: any) => x?.values) as Json).values[`${p}.0`] as number;
          assert.ok(v >= lo && v <= hi, `${field}=${b.key} p${p}=${v} within [${lo}, ${hi}]`);
        }
      }
    }
  });

  test(`${name}: the defaults' and the full-process documents are accepted too`, async () => {
    // separate data streams: split cookies (objects) and redacted ones ("*") cannot share an index
    const all = await allDocuments();
    await bulkIndex(backend(), all.filter((d) => d.source.endsWith('(everything)')).map((d) => d.doc as Doc), 'packetbeat-ebpf-inventory-everything');
    await bulkIndex(backend(), all.filter((d) => d.source.endsWith('(defaults)')).map((d) => d.doc as Doc), 'packetbeat-ebpf-inventory-defaults');
    const { json } = await call(backend(), 'GET', '/packetbeat-ebpf-inventory-everything/_mapping');
    const mappings = (Object.values(json)[0] as Json).mappings as Json;
    for (const p of ['process.start', 'destination.process.working_directory', 'container.id', 'source.process.args_count']) assert.equal(mappedType(mappings, p), FIELDS[p].type, p);
  });
}

function checkSearch(panel: SearchPanel, json: Json, matching: Doc[]): void {
  const [field, order] = panel.sort[0];
  const value = (d: Json): number => {
    const v: unknown = field.split('.').reduce((o: Json | undefined, k) => o?.[k], d);
    return typeof v === 'string' ? Date.parse(v) : (v as number);
  };
  const got = (json.hits.hits as Json[]).map((h) => h.sort[0] as number);
  const want = matching.map(value).sort((a, b) => (order === 'desc' ? b - a : a - b));
  assert.deepEqual(got, want.slice(0, got.length), `${panel.id}: sorted by ${field} ${order}`);
  assert.equal(got.length, Math.min(matching.length, SEARCH_ROWS));
  const shown = ['@timestamp', ...panel.columns];
  for (const h of json.hits.hits as Json[]) for (const k of Object.keys(h._source)) assert.ok(shown.some((c) => c === k || c.startsWith(`${k}.`)), `${panel.id}: _source limited to the columns (${k})`);
}

describe('setup against a real OpenSearch node', { skip: openSearchSkip() }, () => {
  let node: OpenSearchNode;
  const backend = (): Backend => ({ url: node.url, headers: {} });

  before(async () => {
    node = await startOpenSearch();
  });
  after(async () => {
    await node?.close();
  });

  acceptance('OpenSearch', 'opensearch', backend, () => ['--opensearch', node.url]);

  test('setup again after data: the existing data streams get the mappings (no rollover needed)', async () => {
    const r = await runSetup(['--opensearch', node.url]);
    assert.equal(r.code, 0, r.lines.join('\n'));
    const line = r.lines.find((l) => l.includes('existing data streams'))!;
    assert.match(line, /packetbeat-ebpf-http: mappings updated/);
    assert.doesNotMatch(line, /rolled over/);
  });

  test('a data stream from an older template: new fields added, or rolled over when a type changed', async () => {
    const b = backend();
    // an older version of the template, whose url.port was a keyword, and a data stream created with it
    const old = buildIndexTemplate('opensearch') as Json;
    old.template.mappings = { dynamic: false, properties: { '@timestamp': { type: 'date' }, url: { properties: { port: { type: 'keyword' } } } } };
    const putOld = await call(b, 'PUT', `/_index_template/${TEMPLATE_NAME}`, old);
    assert.equal(putOld.status, 200, JSON.stringify(putOld.json));
    const put = await call(b, 'POST', '/packetbeat-ebpf-legacy/_doc?refresh=true', { '@timestamp': '2026-11-25T00:00:00Z', url: { port: '8080' } });
    assert.equal(put.status, 201, JSON.stringify(put.json));
    const r = await runSetup(['--opensearch', node.url]);
    assert.equal(r.code, 0, r.lines.join('\n'));
    assert.match(r.lines.find((l) => l.includes('existing data streams'))!, /packetbeat-ebpf-legacy: rolled over \(a field's type changed\)/);
    // the streams created with the current template only got their mappings again
    assert.match(r.lines.find((l) => l.includes('existing data streams'))!, /packetbeat-ebpf-http: mappings updated/);
    const ds = await call(b, 'GET', '/_data_stream/packetbeat-ebpf-legacy');
    const indices = ds.json.data_streams[0].indices as Json[];
    assert.equal(indices.length, 2, 'a second backing index');
    const mapping = await call(b, 'GET', `/${indices[1].index_name}/_mapping`);
    assert.equal(mappedType((Object.values(mapping.json)[0] as Json).mappings, 'url.port'), 'long');
    assert.equal(mappedType((Object.values(mapping.json)[0] as Json).mappings, 'event.duration'), 'long');
  });

  test('--es against OpenSearch: exit 4, naming the product', async () => {
    const r = await runSetup(['--es', node.url]);
    assert.equal(r.code, EXIT_CODES.version, r.lines.join('\n'));
    assert.match(r.lines.join('\n'), /is not Elasticsearch \(for OpenSearch use --opensearch\)/);
  });

  test('an unreachable OpenSearch Dashboards: the cluster is set up, then exit 2', async () => {
    const r = await runSetup(['--opensearch', node.url, '--opensearch-dashboards', 'http://127.0.0.1:9']);
    assert.equal(r.code, EXIT_CODES.connection, r.lines.join('\n'));
    assert.ok(r.lines.some((l) => l.startsWith('opensearch: index template: ok')));
    assert.match(r.lines[r.lines.length - 1], /^opensearch-dashboards: connect: FAILED: cannot reach http:\/\/127\.0\.0\.1:9 \(connect\): connection refused/);
  });
});

/** ES_URL (credentials in the URL or ES_API_KEY; ES_CA for a self-signed CA, also in NODE_EXTRA_CA_CERTS for this process). */
function esBackend(): Backend | undefined {
  if (!process.env.ES_URL) return undefined;
  const u = new URL(process.env.ES_URL);
  const headers: Record<string, string> = {};
  if (process.env.ES_API_KEY) headers.authorization = `ApiKey ${process.env.ES_API_KEY}`;
  else if (u.username) headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  u.username = '';
  u.password = '';
  return { url: u.toString().replace(/\/$/, ''), headers };
}

function credentialArgs(): string[] {
  const u = new URL(process.env.ES_URL!);
  const args = process.env.ES_API_KEY ? ['--api-key', process.env.ES_API_KEY] : u.username ? ['--username', decodeURIComponent(u.username), '--password', decodeURIComponent(u.password)] : [];
  if (process.env.ES_CA) args.push('--ca', process.env.ES_CA);
  return args;
}

const esSkip = process.env.ES_URL ? false : 'ES_URL is not set (e.g. ES_URL=https://elastic:password@localhost:9200 ES_CA=http_ca.crt NODE_EXTRA_CA_CERTS=http_ca.crt)';
if (esSkip) process.stdout.write(`# setup against Elasticsearch skipped: ${esSkip}\n`);

describe('setup against a real Elasticsearch (ES_URL)', { skip: esSkip }, () => {
  const backend = () => esBackend()!;
  before(async () => {
    // a clean slate for the counts: only this test's documents in packetbeat-ebpf-*
    await call(backend(), 'DELETE', '/_data_stream/packetbeat-ebpf-*');
  });
  acceptance('Elasticsearch', 'elasticsearch', backend, () => ['--es', backend().url, ...credentialArgs()]);
});

const kibanaSkip = process.env.KIBANA_URL ? false : 'KIBANA_URL is not set (e.g. KIBANA_URL=http://localhost:5601, with ES_URL for the credentials)';
if (kibanaSkip) process.stdout.write(`# setup against Kibana skipped: ${kibanaSkip}\n`);

describe('setup against a real Kibana (KIBANA_URL)', { skip: kibanaSkip }, () => {
  test('the saved objects import (twice) and read back', async () => {
    const args = ['--kibana', process.env.KIBANA_URL!, ...(process.env.ES_URL ? credentialArgs() : [])];
    for (let i = 0; i < 2; i++) {
      const r = await runSetup(args);
      assert.equal(r.code, 0, `${r.lines.join('\n')}\n${r.stderr}`);
      assert.match(r.lines[1], new RegExp(`^kibana: saved objects: ok: ${buildSavedObjects().length} saved objects imported`));
    }
    const u = new URL(process.env.KIBANA_URL!);
    const b: Backend = { url: u.toString().replace(/\/$/, ''), headers: { 'kbn-xsrf': 'true', ...(esBackend()?.headers ?? {}) } };
    const dv = await call(b, 'GET', `/api/saved_objects/index-pattern/${DATA_VIEW_ID}`);
    assert.equal(dv.status, 200);
    assert.equal(dv.json.attributes.title, 'packetbeat-ebpf-*');
    for (const o of buildSavedObjects().filter((x) => x.type === 'dashboard')) {
      const d = await call(b, 'GET', `/api/saved_objects/dashboard/${o.id}`);
      assert.equal(d.status, 200, o.id);
      assert.equal(d.json.attributes.title, o.attributes.title);
      assert.equal(d.json.references.length, o.references.length);
    }
  });
});
