/**
 * The Kibana / OpenSearch Dashboards saved objects: every field a panel uses
 * is in the template with a type it can aggregate on; the NDJSON is what the
 * saved-objects import API takes (valid lines, unique ids, every reference
 * resolvable inside the file); generation is deterministic.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FIELDS } from '../../../src/publish/fields';
import { DASHBOARDS, PANELS } from '../../../src/setup/dashboards';
import { buildMappings, INDEX_PATTERN } from '../../../src/setup/index-template';
import { aggregatedFields, filterFields, filterToKql, filterToQuery, panelProblems, panelQuery, type Panel } from '../../../src/setup/panels';
import { buildSavedObjects, DATA_VIEW_ID, toNdjson } from '../../../src/setup/saved-objects';
import { mappedType } from '../../helpers/mapping';

type Json = Record<string, any>;
const AGGREGATABLE = new Set(['keyword', 'long', 'date', 'ip', 'boolean']);

describe('dashboard panels', () => {
  const mapping = buildMappings() as Json;

  test('every field a panel aggregates or sorts on is in the template with an aggregatable type', () => {
    const bad: string[] = [];
    for (const p of PANELS) {
      for (const f of aggregatedFields(p)) {
        const type = mappedType(mapping, f);
        if (!type || !AGGREGATABLE.has(type)) bad.push(`${p.id}: ${f} is ${type ?? 'not mapped'}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  test('every field a panel filters on or shows is mapped', () => {
    for (const p of PANELS) {
      for (const f of [...filterFields(p.filter), ...(p.kind === 'search' ? p.columns : [])]) {
        assert.ok(mappedType(mapping, f), `${p.id}: ${f} is not mapped`);
        assert.ok(FIELDS[f], `${p.id}: ${f} is not in the inventory`);
      }
    }
  });

  test('the panels are well-formed (orderings, chart shapes)', () => {
    assert.deepEqual(PANELS.flatMap(panelProblems), []);
    const bad: Panel = {
      kind: 'visualization',
      id: 'x',
      title: 'x',
      description: 'x',
      chart: 'line',
      metrics: [{ type: 'percentiles', field: 'event.duration', percents: [95] }],
      buckets: [{ type: 'terms', field: 'process.name', size: 5, orderBy: 0 }],
    };
    assert.deepEqual(panelProblems(bad), [
      'x: terms on process.name ordered by percentiles (multi-value): order by a single-value metric',
      'x: a line chart needs a date histogram first',
    ]);
  });

  test('the per-process latency panels: p50/p95/p99 of event.duration by process.name and by source.process.name', () => {
    for (const [id, field] of [
      ['packetbeat-ebpf-latency-by-serving-process', 'process.name'],
      ['packetbeat-ebpf-latency-by-calling-process', 'source.process.name'],
    ]) {
      const p = PANELS.find((x) => x.id === id)!;
      assert.deepEqual(panelQuery(p), {
        query: { match_all: {} },
        size: 0,
        aggs: {
          '4': {
            terms: { field, size: 20, order: { _count: 'desc' } },
            aggs: { '2': { percentiles: { field: 'event.duration', percents: [50, 95, 99] } }, '3': { max: { field: 'event.duration' } } },
          },
        },
      });
    }
  });

  test('filters render to KQL/DQL and to query DSL alike', () => {
    const f = { and: [{ is: { field: 'type', value: 'pgsql' } }, { exists: 'pgsql.error_code' }, { not: { oneOf: { field: 'method', values: ['SELECT', 'WITH'] } } }] };
    assert.equal(filterToKql(f), 'type : "pgsql" and pgsql.error_code : * and not (method : ("SELECT" or "WITH"))');
    assert.deepEqual(filterToQuery(f), {
      bool: { filter: [{ term: { type: 'pgsql' } }, { exists: { field: 'pgsql.error_code' } }, { bool: { must_not: [{ terms: { method: ['SELECT', 'WITH'] } }] } }] },
    });
    assert.equal(filterToKql({ is: { field: 'query', value: 'say "hi" \\ now' } }), 'query : "say \\"hi\\" \\\\ now"');
    assert.equal(filterToKql({ atLeast: { field: 'http.response.status_code', value: 400 } }), 'http.response.status_code >= 400');
  });

  test('the dashboards: per-process latency, transactions, errors; every panel on one', () => {
    assert.deepEqual(DASHBOARDS.map((d) => d.title), ['[packetbeat-ebpf] Per-process latency', '[packetbeat-ebpf] Transactions', '[packetbeat-ebpf] Errors']);
    const placed = new Set(DASHBOARDS.flatMap((d) => d.panels.map((p) => p.id)));
    assert.deepEqual(PANELS.filter((p) => !placed.has(p.id)).map((p) => p.id), []);
    for (const d of DASHBOARDS) for (const p of d.panels) assert.ok(p.width > 0 && p.width <= 48, `${d.id}: ${p.id} width`);
  });
});

describe('saved objects NDJSON', () => {
  const ndjson = toNdjson(buildSavedObjects());
  const lines = ndjson.trimEnd().split('\n');
  const objects = lines.map((l) => JSON.parse(l) as Json);

  test('one JSON object per line, unique ids, the types both Kibana and OpenSearch Dashboards import', () => {
    assert.ok(ndjson.endsWith('\n'));
    assert.equal(new Set(objects.map((o) => `${o.type}:${o.id}`)).size, objects.length);
    assert.deepEqual([...new Set(objects.map((o) => o.type))].sort(), ['dashboard', 'index-pattern', 'search', 'visualization']);
    for (const o of objects) {
      assert.ok(typeof o.id === 'string' && /^[a-z0-9-]+$/.test(o.id), o.id);
      assert.ok(o.attributes.title, `${o.id} has a title`);
      assert.deepEqual(Object.keys(o.migrationVersion), [o.type], `${o.id} migrationVersion`);
      assert.ok(Array.isArray(o.references));
    }
  });

  test('the data view: packetbeat-ebpf-*, @timestamp, durations formatted from nanoseconds', () => {
    const dv = objects.find((o) => o.type === 'index-pattern')!;
    assert.equal(dv.id, DATA_VIEW_ID);
    assert.equal(dv.attributes.title, INDEX_PATTERN);
    assert.equal(dv.attributes.timeFieldName, '@timestamp');
    const formats = JSON.parse(dv.attributes.fieldFormatMap);
    assert.deepEqual(formats['event.duration'], { id: 'duration', params: { inputFormat: 'nanoseconds', outputFormat: 'asMilliseconds', outputPrecision: 3 } });
  });

  test('every reference resolves to an object earlier in the file, and every reference name is used', () => {
    const seen = new Map<string, string>();
    for (const o of objects) {
      for (const r of o.references) assert.equal(seen.get(r.id), r.type, `${o.id} → ${r.type}:${r.id} must come earlier`);
      seen.set(o.id, o.type);
      const names = new Set<string>();
      const source = JSON.parse(o.attributes.kibanaSavedObjectMeta?.searchSourceJSON ?? '{}');
      if (source.indexRefName) names.add(source.indexRefName);
      if (o.type === 'dashboard') for (const panel of JSON.parse(o.attributes.panelsJSON)) names.add(panel.panelRefName);
      assert.deepEqual([...names].sort(), o.references.map((r: Json) => r.name).sort(), `${o.id}: references and their uses`);
    }
  });

  test('visualizations: visState parses, its aggs use the panel fields, the search source carries the filter', () => {
    for (const p of PANELS) {
      const o = objects.find((x) => x.id === p.id)!;
      assert.equal(o.type, p.kind);
      const source = JSON.parse(o.attributes.kibanaSavedObjectMeta.searchSourceJSON);
      assert.deepEqual(source.query, { query: p.filter ? filterToKql(p.filter) : '', language: 'kuery' });
      if (p.kind === 'search') {
        assert.deepEqual(o.attributes.sort, p.sort);
        assert.deepEqual(o.attributes.columns, p.columns);
        continue;
      }
      const vis = JSON.parse(o.attributes.visState);
      assert.equal(vis.type, p.chart);
      const fields = vis.aggs.map((a: Json) => a.params.field).filter(Boolean);
      assert.deepEqual(fields, aggregatedFields(p));
      for (const a of vis.aggs) {
        assert.equal(a.enabled, true);
        if (a.type === 'terms' && a.params.orderBy !== 'custom') assert.ok(vis.aggs.some((m: Json) => m.id === a.params.orderBy && m.schema === 'metric'), `${p.id}: orderBy`);
      }
    }
  });

  test('dashboards: panels laid out on the 48-column grid without overlap', () => {
    for (const o of objects.filter((x) => x.type === 'dashboard')) {
      const panels = JSON.parse(o.attributes.panelsJSON) as Json[];
      const cells = new Set<string>();
      for (const p of panels) {
        const g = p.gridData;
        assert.ok(g.x + g.w <= 48, `${o.id}: panel ${p.panelIndex} fits`);
        for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${o.id}: panel ${p.panelIndex} overlaps`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  test('generation is deterministic', () => {
    assert.equal(toNdjson(buildSavedObjects()), ndjson);
  });
});
