import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FIELDS, FREE_FORM } from '../../../src/publish/fields';
import {
  buildIlmPolicy,
  buildIndexTemplate,
  buildIsmPolicy,
  buildMappings,
  INDEX_PATTERN,
  POLICY_NAME,
  validateLifecycle,
} from '../../../src/setup/index-template';
import { mappedType } from '../../helpers/mapping';

type Json = Record<string, any>;

describe('index template', () => {
  const es = buildIndexTemplate('elasticsearch') as Json;
  const os = buildIndexTemplate('opensearch') as Json;

  test('a composable data stream template over packetbeat-ebpf-*', () => {
    for (const t of [es, os]) {
      assert.deepEqual(t.index_patterns, [INDEX_PATTERN]);
      assert.deepEqual(t.data_stream, {});
      assert.equal(t.priority, 200);
      assert.equal(t.template.settings['index.number_of_shards'], 1);
      assert.equal(t.template.settings['index.mapping.total_fields.limit'], 10_000);
    }
    // ILM is named in Elasticsearch's settings; OpenSearch has no such setting (ISM attaches itself)
    assert.equal(es.template.settings['index.lifecycle.name'], POLICY_NAME);
    assert.equal(os.template.settings['index.lifecycle.name'], undefined);
    assert.deepEqual(es.template.mappings, os.template.mappings);
  });

  test('the field types users rely on', () => {
    const m = buildMappings() as Json;
    assert.equal(m.dynamic, false, 'nothing mapped by guess');
    const expect: Record<string, string> = {
      '@timestamp': 'date',
      'event.duration': 'long',
      'event.start': 'date',
      'source.ip': 'ip',
      'destination.ip': 'ip',
      'client.ip': 'ip',
      'related.ip': 'ip',
      'network.forwarded_ip': 'ip',
      'source.port': 'long',
      'http.response.status_code': 'long',
      'process.name': 'keyword',
      'source.process.name': 'keyword',
      'destination.process.pid': 'long',
      'process.start': 'date',
      query: 'keyword',
      'query.text': 'text',
      'url.path': 'keyword',
      request: 'text',
      'http.response.body.content': 'text',
      'pgsql.error_code': 'keyword',
      'mysql.error_code': 'long',
      'mysql.compressed': 'boolean',
      'http.request.headers.content-length': 'long',
    };
    for (const [path, type] of Object.entries(expect)) assert.equal(mappedType(m, path), type, path);
    assert.equal(m.properties.query.ignore_above, 1024);
  });

  test('every inventory field is mapped with its type', () => {
    const m = buildMappings() as Json;
    for (const [path, def] of Object.entries(FIELDS)) {
      assert.equal(mappedType(m, path), def.type, path);
      if (def.text) assert.equal(mappedType(m, `${path}.text`), 'text', `${path}.text`);
    }
  });

  test('headers: dynamic objects whose strings become keywords', () => {
    const m = buildMappings() as Json;
    for (const path of Object.keys(FREE_FORM)) {
      const [a, b, c] = path.split('.');
      const obj = m.properties[a].properties[b].properties[c];
      assert.equal(obj.type, 'object');
      assert.equal(obj.dynamic, true);
      const tpl = m.dynamic_templates.find((t: Json) => t[path])?.[path];
      assert.deepEqual(tpl, { mapping: { ignore_above: 1024, type: 'keyword' }, match_mapping_type: 'string', path_match: `${path}.*` });
    }
  });

  test('generation is deterministic (same bytes every time, keys sorted)', () => {
    assert.equal(JSON.stringify(buildIndexTemplate('elasticsearch')), JSON.stringify(es));
    const keys = Object.keys(es.template.mappings.properties);
    assert.deepEqual(keys, [...keys].sort());
  });
});

describe('lifecycle policies', () => {
  test('ILM: rollover in hot, delete only when asked', () => {
    const keep = buildIlmPolicy() as Json;
    assert.deepEqual(keep.policy.phases.hot.actions.rollover, { max_age: '30d', max_primary_shard_size: '50gb' });
    assert.equal(keep.policy.phases.delete, undefined);
    const del = buildIlmPolicy({ rolloverAge: '1d', rolloverSize: '10gb', deleteAfter: '14d' }) as Json;
    assert.deepEqual(del.policy.phases.delete, { actions: { delete: {} }, min_age: '14d' });
    assert.deepEqual(del.policy.phases.hot.actions.rollover, { max_age: '1d', max_primary_shard_size: '10gb' });
  });

  test('ISM: rollover state attached to packetbeat-ebpf-* by its ism_template, delete state when asked', () => {
    const keep = buildIsmPolicy() as Json;
    assert.equal(keep.policy.default_state, 'hot');
    assert.deepEqual(keep.policy.ism_template, [{ index_patterns: [INDEX_PATTERN], priority: 100 }]);
    assert.equal(keep.policy.states.length, 1);
    assert.deepEqual(keep.policy.states[0].transitions, []);
    const del = buildIsmPolicy({ rolloverAge: '1d', rolloverSize: '10gb', deleteAfter: '14d' }) as Json;
    assert.deepEqual(del.policy.states.map((s: Json) => s.name), ['hot', 'delete']);
    assert.deepEqual(del.policy.states[0].transitions, [{ conditions: { min_rollover_age: '14d' }, state_name: 'delete' }]);
  });

  test('bad durations and sizes are refused before reaching the cluster', () => {
    assert.equal(validateLifecycle({ rolloverAge: '30d', rolloverSize: '50gb', deleteAfter: '90d' }), undefined);
    assert.match(validateLifecycle({ rolloverAge: '30 days', rolloverSize: '50gb' }) ?? '', /rollover age "30 days"/);
    assert.match(validateLifecycle({ rolloverAge: '30d', rolloverSize: '50GiB' }) ?? '', /rollover size "50GiB"/);
    assert.match(validateLifecycle({ rolloverAge: '30d', rolloverSize: '50gb', deleteAfter: 'never' }) ?? '', /delete-after "never"/);
  });
});
