/**
 * What a panel must show for a set of documents, computed here in plain
 * TypeScript from the documents (not from the query DSL the panel runs), and
 * the comparison with what a real Elasticsearch/OpenSearch node answered.
 */
import assert from 'node:assert/strict';
import { FIELDS, KEYWORD_IGNORE_ABOVE } from '../../src/publish/fields';
import { bucketId, metricId, type Filter, type Metric, type VisualizationPanel } from '../../src/setup/panels';

type Doc = Record<string, unknown>;
type Key = string | number;

/** Values of a dotted path (arrays flattened), as the node indexes them (long keywords are not). */
export function indexedValues(doc: Doc, path: string): Key[] {
  let cur: unknown[] = [doc];
  for (const part of path.split('.')) {
    cur = cur.flatMap((v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? [(v as Doc)[part]] : [])).flatMap((v) => (Array.isArray(v) ? v : [v]));
  }
  const values = cur.filter((v): v is Key => typeof v === 'string' || typeof v === 'number');
  if (FIELDS[path]?.type === 'keyword') return values.filter((v) => String(v).length <= KEYWORD_IGNORE_ABOVE);
  return values;
}

export function matchesFilter(doc: Doc, f: Filter | undefined): boolean {
  if (!f) return true;
  if ('is' in f) return indexedValues(doc, f.is.field).includes(f.is.value);
  if ('oneOf' in f) return indexedValues(doc, f.oneOf.field).some((v) => f.oneOf.values.includes(v));
  if ('atLeast' in f) return indexedValues(doc, f.atLeast.field).some((v) => typeof v === 'number' && v >= f.atLeast.value);
  if ('exists' in f) return indexedValues(doc, f.exists).length > 0;
  if ('and' in f) return f.and.every((x) => matchesFilter(doc, x));
  return !matchesFilter(doc, f.not);
}

/** Percentile estimates must lie between the order statistics around rank q·(n−1). */
export function percentileBracket(values: number[], percent: number): [number, number] {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (percent / 100) * (sorted.length - 1);
  const lo = Math.max(0, Math.floor(rank) - 1);
  const hi = Math.min(sorted.length - 1, Math.ceil(rank) + 1);
  return [sorted[lo], sorted[hi]];
}

function numbers(docs: Doc[], field: string): number[] {
  return docs.flatMap((d) => indexedValues(d, field)).filter((v): v is number => typeof v === 'number');
}

export interface ExpectedBucket {
  key: Key;
  docs: Doc[];
  children?: ExpectedBucket[];
}

/** The buckets the panel's aggregation must return, in order, with their documents. */
export function expectedBuckets(p: VisualizationPanel, docs: Doc[], intervalMs: number, level = 0): ExpectedBucket[] {
  const b = p.buckets[level];
  if (!b) return [];
  const groups = new Map<Key, Doc[]>();
  for (const d of docs) {
    const keys =
      b.type === 'date_histogram'
        ? indexedValues(d, b.field).map((v) => Math.floor(Date.parse(String(v)) / intervalMs) * intervalMs)
        : [...new Set(indexedValues(d, b.field))];
    for (const k of keys) groups.set(k, [...(groups.get(k) ?? []), d]);
  }
  let buckets: ExpectedBucket[] = [...groups].map(([key, g]) => ({ key, docs: g }));
  const byKey = (x: ExpectedBucket, y: ExpectedBucket) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0);
  if (b.type === 'date_histogram') buckets.sort(byKey);
  else {
    // descending by the ordering value, ties by key ascending (what the node does)
    const value = (x: ExpectedBucket): number => {
      if (b.orderBy === 'count') return x.docs.length;
      const m = p.metrics[b.orderBy];
      if (m.type === 'count') return x.docs.length;
      const v = numbers(x.docs, (m as { field: string }).field);
      if (m.type === 'max') return Math.max(...v);
      if (m.type === 'min') return Math.min(...v);
      if (m.type === 'sum') return v.reduce((s, n) => s + n, 0);
      return v.reduce((s, n) => s + n, 0) / v.length;
    };
    buckets.sort((x, y) => value(y) - value(x) || byKey(x, y));
    buckets = buckets.slice(0, b.size);
  }
  for (const bucket of buckets) if (level + 1 < p.buckets.length) bucket.children = expectedBuckets(p, bucket.docs, intervalMs, level + 1);
  return buckets;
}

type Json = Record<string, any>;

function checkMetric(m: Metric, got: Json | undefined, docs: Doc[], where: string): void {
  if (m.type === 'count') return; // the bucket's doc_count, checked by the caller
  assert.ok(got, `${where}: metric ${m.type} missing`);
  const values = numbers(docs, m.field);
  if (m.type === 'percentiles') {
    for (const percent of m.percents) {
      const v: number | null = got.values[`${percent.toFixed(1)}`] ?? got.values[String(percent)];
      if (values.length === 0) {
        assert.equal(v, null, `${where}: p${percent} of nothing`);
        continue;
      }
      const [lo, hi] = percentileBracket(values, percent);
      assert.ok(v !== null && v >= lo && v <= hi, `${where}: p${percent} of ${m.field} = ${v}, expected within [${lo}, ${hi}] (n=${values.length})`);
    }
    return;
  }
  const expected =
    m.type === 'max' ? Math.max(...values) : m.type === 'min' ? Math.min(...values) : m.type === 'sum' ? values.reduce((s, n) => s + n, 0) : values.reduce((s, n) => s + n, 0) / values.length;
  const tolerance = m.type === 'avg' || m.type === 'sum' ? Math.abs(expected) * 1e-9 : 0;
  assert.ok(Math.abs(got.value - expected) <= tolerance, `${where}: ${m.type} of ${m.field} = ${got.value}, expected ${expected}`);
}

/**
 * Compare the node's aggregation response with the expected buckets: keys
 * and counts exactly, in order; max/min exactly, avg/sum to 1e-9; each
 * percentile within the bracket of the bucket's own values.
 */
export function compareAggregation(p: VisualizationPanel, aggs: Json, expected: ExpectedBucket[], level = 0, where = p.id): void {
  const id = bucketId(p, level);
  const got = (aggs[id]?.buckets ?? []) as Json[];
  assert.deepEqual(
    got.map((b) => [b.key, b.doc_count]),
    expected.map((b) => [b.key, b.docs.length]),
    `${where}: buckets of ${p.buckets[level].field}`,
  );
  got.forEach((b, i) => {
    const e = expected[i];
    const at = `${where} > ${String(b.key)}`;
    if (level + 1 < p.buckets.length) compareAggregation(p, b, e.children ?? [], level + 1, at);
    else p.metrics.forEach((m, mi) => checkMetric(m, b[metricId(mi)], e.docs, at));
  });
}
