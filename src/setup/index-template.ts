/**
 * The index template and lifecycle policies, generated from the field
 * inventory (src/publish/fields.ts). One composable template covers the data
 * streams the outputs write (packetbeat-ebpf-<protocol>); Elasticsearch gets an
 * ILM policy named in the template's settings, OpenSearch an ISM policy that
 * attaches itself to new backing indices through its ism_template.
 */
import { AGENT_VERSION } from '../publish/document';
import { FIELDS, FREE_FORM, KEYWORD_IGNORE_ABOVE, type FieldDef } from '../publish/fields';

export const TEMPLATE_NAME = 'packetbeat-ebpf';
/** The data streams the outputs write: packetbeat-ebpf-http, -pgsql, -mysql, -redis. */
export const INDEX_PATTERN = 'packetbeat-ebpf-*';
export const POLICY_NAME = 'packetbeat-ebpf';
/** Above the built-in templates (Elasticsearch's logs-*-* and friends use 100). */
export const TEMPLATE_PRIORITY = 200;
/** Beats' limit: headers add fields per distinct name. */
export const TOTAL_FIELDS_LIMIT = 10_000;
/** Bumped when the template's shape changes (the template's `version`). */
export const TEMPLATE_VERSION = 1;

export type Flavor = 'elasticsearch' | 'opensearch';

export interface LifecycleOptions {
  /** Roll the write index over at this age... */
  rolloverAge: string;
  /** ...or when a primary shard reaches this size. */
  rolloverSize: string;
  /** Delete backing indices this long after their rollover (undefined: keep them). */
  deleteAfter?: string;
}

export const DEFAULT_LIFECYCLE: LifecycleOptions = { rolloverAge: '30d', rolloverSize: '50gb' };

type Mapping = Record<string, unknown>;

function leafMapping(def: FieldDef): Mapping {
  if (def.type !== 'keyword') return { type: def.type };
  const m: Mapping = { type: 'keyword', ignore_above: KEYWORD_IGNORE_ABOVE };
  if (def.text) m.fields = { text: { type: 'text' } };
  return m;
}

/** Place a mapping at a dotted path in a properties tree, refusing a leaf/object clash. */
function place(root: Record<string, Mapping>, path: string, mapping: Mapping): void {
  const parts = path.split('.');
  let props = root;
  for (let i = 0; i < parts.length - 1; i++) {
    const existing = props[parts[i]];
    if (existing && !('properties' in existing)) throw new Error(`field inventory: ${parts.slice(0, i + 1).join('.')} is both a field and an object`);
    const node = (props[parts[i]] ??= { properties: {} }) as { properties: Record<string, Mapping> };
    props = node.properties;
  }
  const last = parts[parts.length - 1];
  if (props[last]) throw new Error(`field inventory: ${path} is defined twice`);
  props[last] = mapping;
}

/** Sort object keys recursively so the generated JSON is the same on every run. */
export function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortKeys) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value as object).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
  return out as T;
}

/**
 * The mappings: every inventory field explicit, nothing else mapped by guess
 * (dynamic: false keeps unknown fields in _source, unindexed), except the
 * free-form objects (headers), where strings become keywords.
 */
export function buildMappings(): Mapping {
  const properties: Record<string, Mapping> = {};
  for (const [path, def] of Object.entries(FIELDS)) place(properties, path, leafMapping(def));
  const dynamicTemplates: Array<Record<string, unknown>> = [];
  for (const [path, ff] of Object.entries(FREE_FORM)) {
    const known: Record<string, Mapping> = {};
    for (const [name, def] of Object.entries(ff.known)) known[name] = leafMapping(def);
    place(properties, path, { type: 'object', dynamic: true, properties: known });
    dynamicTemplates.push({
      [path]: { path_match: `${path}.*`, match_mapping_type: 'string', mapping: { type: 'keyword', ignore_above: KEYWORD_IGNORE_ABOVE } },
    });
  }
  return sortKeys({ dynamic: false, date_detection: false, dynamic_templates: dynamicTemplates, properties });
}

/** The composable index template (PUT _index_template/packetbeat-ebpf). */
export function buildIndexTemplate(flavor: Flavor): Record<string, unknown> {
  const settings: Record<string, unknown> = {
    'index.number_of_shards': 1,
    'index.mapping.total_fields.limit': TOTAL_FIELDS_LIMIT,
  };
  // Elasticsearch names the ILM policy here; OpenSearch's ISM policy finds the indices itself
  if (flavor === 'elasticsearch') settings['index.lifecycle.name'] = POLICY_NAME;
  return sortKeys({
    index_patterns: [INDEX_PATTERN],
    data_stream: {},
    priority: TEMPLATE_PRIORITY,
    version: TEMPLATE_VERSION,
    _meta: { description: 'Transactions written by packetbeat-ebpf', managed_by: 'packetbeat-ebpf', agent_version: AGENT_VERSION },
    template: { settings, mappings: buildMappings() },
  });
}

const DURATION = /^\d+(d|h|m|s)$/;
const SIZE = /^\d+(b|kb|mb|gb|tb)$/;

/** Check durations and sizes before they reach the cluster (its errors are less clear). */
export function validateLifecycle(o: LifecycleOptions): string | undefined {
  if (!DURATION.test(o.rolloverAge)) return `rollover age "${o.rolloverAge}" must be a number and d, h, m or s (e.g. 30d)`;
  if (!SIZE.test(o.rolloverSize)) return `rollover size "${o.rolloverSize}" must be a number and b, kb, mb, gb or tb (e.g. 50gb)`;
  if (o.deleteAfter !== undefined && !DURATION.test(o.deleteAfter)) return `delete-after "${o.deleteAfter}" must be a number and d, h, m or s (e.g. 90d)`;
  return undefined;
}

/** Elasticsearch ILM policy (PUT _ilm/policy/packetbeat-ebpf). */
export function buildIlmPolicy(o: LifecycleOptions = DEFAULT_LIFECYCLE): Record<string, unknown> {
  const phases: Record<string, unknown> = {
    hot: { min_age: '0ms', actions: { rollover: { max_age: o.rolloverAge, max_primary_shard_size: o.rolloverSize } } },
  };
  if (o.deleteAfter) phases.delete = { min_age: o.deleteAfter, actions: { delete: {} } };
  return sortKeys({ policy: { _meta: { managed_by: 'packetbeat-ebpf', agent_version: AGENT_VERSION }, phases } });
}

/** OpenSearch ISM policy (PUT _plugins/_ism/policies/packetbeat-ebpf). */
export function buildIsmPolicy(o: LifecycleOptions = DEFAULT_LIFECYCLE): Record<string, unknown> {
  const hot = {
    name: 'hot',
    actions: [{ rollover: { min_index_age: o.rolloverAge, min_size: o.rolloverSize } }],
    transitions: o.deleteAfter ? [{ state_name: 'delete', conditions: { min_rollover_age: o.deleteAfter } }] : [],
  };
  const states: unknown[] = [hot];
  if (o.deleteAfter) states.push({ name: 'delete', actions: [{ delete: {} }], transitions: [] });
  return sortKeys({
    policy: {
      description: `packetbeat-ebpf transactions: roll over at ${o.rolloverAge} or ${o.rolloverSize}${o.deleteAfter ? `, delete ${o.deleteAfter} after rollover` : ''}`,
      default_state: 'hot',
      states,
      // a data stream's backing indices are matched by the data stream's name
      ism_template: [{ index_patterns: [INDEX_PATTERN], priority: 100 }],
    },
  });
}
