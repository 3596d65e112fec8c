/**
 * Dashboard panels described once: a filter, metrics and buckets. The same
 * description renders the Kibana / OpenSearch Dashboards visState (and the
 * KQL/DQL of its search source) and the Elasticsearch/OpenSearch query the
 * panel runs, so tests can run each panel's aggregation against a real node.
 */

/** Which documents a panel looks at. */
export type Filter =
  | { is: { field: string; value: string | number } }
  | { oneOf: { field: string; values: Array<string | number> } }
  | { atLeast: { field: string; value: number } }
  | { exists: string }
  | { and: Filter[] }
  | { not: Filter };

export type Metric =
  | { type: 'count' }
  | { type: 'avg' | 'max' | 'min' | 'sum'; field: string }
  | { type: 'percentiles'; field: string; percents: number[] };

export type Bucket =
  /** Top `size` values of `field`, ordered (descending) by their count or by the metric at index `orderBy`. */
  | { type: 'terms'; field: string; size: number; orderBy: 'count' | number }
  /** Over time; the interval is Kibana's "auto" in the visualization. */
  | { type: 'date_histogram'; field: string };

export interface VisualizationPanel {
  kind: 'visualization';
  id: string;
  title: string;
  description: string;
  /** table: rows per bucket; line/histogram: x = the date histogram, one series per value of a second (terms) bucket. */
  chart: 'table' | 'line' | 'histogram';
  filter?: Filter;
  metrics: Metric[];
  buckets: Bucket[];
  /** Title of the value axis (line/histogram). */
  valueAxisTitle?: string;
}

/** A saved search: matching documents, one row each, with these columns, in this order. */
export interface SearchPanel {
  kind: 'search';
  id: string;
  title: string;
  description: string;
  filter?: Filter;
  columns: string[];
  sort: Array<[field: string, order: 'asc' | 'desc']>;
}

export type Panel = VisualizationPanel | SearchPanel;

export interface DashboardSpec {
  id: string;
  title: string;
  description: string;
  /** Panels in reading order; each row is filled left to right on Kibana's 48-column grid. */
  panels: Array<{ id: string; width: number; height: number }>;
}

function kqlValue(v: string | number): string {
  return typeof v === 'number' ? String(v) : `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The filter as KQL (Kibana) / DQL (OpenSearch Dashboards): the same syntax. */
export function filterToKql(f: Filter): string {
  if ('is' in f) return `${f.is.field} : ${kqlValue(f.is.value)}`;
  if ('oneOf' in f) return `${f.oneOf.field} : (${f.oneOf.values.map(kqlValue).join(' or ')})`;
  if ('atLeast' in f) return `${f.atLeast.field} >= ${f.atLeast.value}`;
  if ('exists' in f) return `${f.exists} : *`;
  if ('and' in f) return f.and.map((x) => ('and' in x || 'oneOf' in x ? `(${filterToKql(x)})` : filterToKql(x))).join(' and ');
  return `not (${filterToKql(f.not)})`;
}

/** The filter as query DSL (what Kibana compiles the KQL into). */
export function filterToQuery(f: Filter): Record<string, unknown> {
  if ('is' in f) return { term: { [f.is.field]: f.is.value } };
  if ('oneOf' in f) return { terms: { [f.oneOf.field]: f.oneOf.values } };
  if ('atLeast' in f) return { range: { [f.atLeast.field]: { gte: f.atLeast.value } } };
  if ('exists' in f) return { exists: { field: f.exists } };
  if ('and' in f) return { bool: { filter: f.and.map(filterToQuery) } };
  return { bool: { must_not: [filterToQuery(f.not)] } };
}

export function filterFields(f: Filter | undefined): string[] {
  if (!f) return [];
  if ('is' in f) return [f.is.field];
  if ('oneOf' in f) return [f.oneOf.field];
  if ('atLeast' in f) return [f.atLeast.field];
  if ('exists' in f) return [f.exists];
  if ('and' in f) return f.and.flatMap(filterFields);
  return filterFields(f.not);
}

/** Fields a panel aggregates on or sorts by (these need doc values). */
export function aggregatedFields(p: Panel): string[] {
  if (p.kind === 'search') return p.sort.map(([f]) => f);
  return [...p.metrics.flatMap((m) => ('field' in m ? [m.field] : [])), ...p.buckets.map((b) => b.field)];
}

/** Kibana agg ids: metrics first ("1".."n"), then buckets, in order. */
export const metricId = (i: number): string => String(i + 1);
export const bucketId = (p: VisualizationPanel, i: number): string => String(p.metrics.length + i + 1);

function metricAgg(m: Metric): Record<string, unknown> | undefined {
  if (m.type === 'count') return undefined; // every bucket's doc_count
  if (m.type === 'percentiles') return { percentiles: { field: m.field, percents: m.percents } };
  return { [m.type]: { field: m.field } };
}

/** Rows a saved search shows (Discover's default sample size). */
export const SEARCH_ROWS = 500;

export interface QueryOptions {
  /** fixed_interval of the date histogram (Kibana picks one from the time range). */
  interval: string;
}

/**
 * The search body the panel runs: its filter, then the buckets nested in
 * order, the metrics inside the innermost bucket. Aggregations are named by
 * their visState ids.
 */
export function panelQuery(p: Panel, o: QueryOptions = { interval: '1h' }): Record<string, unknown> {
  const query = p.filter ? filterToQuery(p.filter) : { match_all: {} };
  if (p.kind === 'search') {
    // Discover shows the time field beside the columns
    return { query, size: SEARCH_ROWS, sort: p.sort.map(([field, order]) => ({ [field]: { order } })), _source: [...new Set(['@timestamp', ...p.columns])] };
  }
  const metrics: Record<string, unknown> = {};
  p.metrics.forEach((m, i) => {
    const agg = metricAgg(m);
    if (agg) metrics[metricId(i)] = agg;
  });
  let inner: Record<string, unknown> = metrics;
  for (let i = p.buckets.length - 1; i >= 0; i--) {
    const b = p.buckets[i];
    let agg: Record<string, unknown>;
    if (b.type === 'terms') {
      const byCount = b.orderBy === 'count' || p.metrics[b.orderBy].type === 'count';
      agg = { terms: { field: b.field, size: b.size, order: byCount ? { _count: 'desc' } : { [metricId(b.orderBy as number)]: 'desc' } } };
    } else {
      agg = { date_histogram: { field: b.field, fixed_interval: o.interval, min_doc_count: 1 } };
    }
    if (Object.keys(inner).length > 0) agg.aggs = inner;
    inner = { [bucketId(p, i)]: agg };
  }
  return { query, size: 0, aggs: inner };
}

/** Problems that would make a panel fail in Kibana or here (checked by the tests and before export). */
export function panelProblems(p: Panel): string[] {
  const problems: string[] = [];
  if (p.kind === 'search') {
    if (p.columns.length === 0) problems.push(`${p.id}: no columns`);
    return problems;
  }
  if (p.metrics.length === 0) problems.push(`${p.id}: no metric`);
  p.buckets.forEach((b) => {
    if (b.type !== 'terms' || b.orderBy === 'count') return;
    const by = p.metrics[b.orderBy];
    if (!by) problems.push(`${p.id}: terms on ${b.field} ordered by metric #${b.orderBy}, which does not exist`);
    else if (by.type === 'percentiles') problems.push(`${p.id}: terms on ${b.field} ordered by percentiles (multi-value): order by a single-value metric`);
  });
  if (p.chart !== 'table') {
    if (p.buckets[0]?.type !== 'date_histogram') problems.push(`${p.id}: a ${p.chart} chart needs a date histogram first`);
    if (p.buckets.length > 2 || p.buckets.slice(1).some((b) => b.type !== 'terms')) problems.push(`${p.id}: a ${p.chart} chart takes one terms split at most`);
  }
  return problems;
}
