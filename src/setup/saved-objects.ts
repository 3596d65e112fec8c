/**
 * Kibana / OpenSearch Dashboards saved objects, generated from the panel
 * descriptions: the data view (index-pattern), one aggregation-based
 * `visualization` or `search` per panel, and the dashboards. Written in the
 * 7.10 shape (the one OpenSearch Dashboards kept) with the matching
 * migrationVersion, so both import them: OpenSearch Dashboards as they are,
 * Kibana 8.x by migrating them forward like any 7.10 export.
 */
import { INDEX_PATTERN, sortKeys } from './index-template';
import { DASHBOARDS, PANELS } from './dashboards';
import { bucketId, filterToKql, metricId, type DashboardSpec, type Panel, type SearchPanel, type VisualizationPanel } from './panels';

export const DATA_VIEW_ID = 'packetbeat-ebpf-data-view';
const INDEX_REF = 'kibanaSavedObjectMeta.searchSourceJSON.index';

/**
 * The last migration each type has in OpenSearch Dashboards (and Kibana 7.10):
 * a newer version is refused as "from a more recent version", an older one
 * would re-run migrations written for older shapes.
 */
const MIGRATION_VERSION = {
  'index-pattern': '7.6.0',
  search: '7.9.3',
  visualization: '7.10.0',
  dashboard: '7.9.3',
} as const;

export type SavedObjectType = keyof typeof MIGRATION_VERSION;

export interface SavedObjectReference {
  name: string;
  type: SavedObjectType;
  id: string;
}

export interface SavedObject {
  id: string;
  type: SavedObjectType;
  attributes: Record<string, unknown>;
  references: SavedObjectReference[];
  migrationVersion: Record<string, string>;
}

const GRID_COLUMNS = 48;

/** Field formats: durations are nanoseconds, shown as milliseconds; byte counts as bytes. */
function fieldFormatMap(): Record<string, unknown> {
  const duration = { id: 'duration', params: { inputFormat: 'nanoseconds', outputFormat: 'asMilliseconds', outputPrecision: 3 } };
  const bytes = { id: 'bytes' };
  const formats: Record<string, unknown> = {};
  for (const f of ['event.duration', 'packetbeat_ebpf.client_duration', 'packetbeat_ebpf.server_duration']) formats[f] = duration;
  for (const f of ['source.bytes', 'destination.bytes', 'client.bytes', 'server.bytes', 'network.bytes', 'http.request.bytes', 'http.response.bytes', 'http.request.body.bytes', 'http.response.body.bytes']) {
    formats[f] = bytes;
  }
  return formats;
}

function searchSource(p: { filter?: Panel['filter'] }): string {
  return JSON.stringify({ query: { query: p.filter ? filterToKql(p.filter) : '', language: 'kuery' }, filter: [], indexRefName: INDEX_REF });
}

function object(id: string, type: SavedObjectType, attributes: Record<string, unknown>, references: SavedObjectReference[]): SavedObject {
  return { id, type, attributes, references, migrationVersion: { [type]: MIGRATION_VERSION[type] } };
}

function dataView(): SavedObject {
  return object(DATA_VIEW_ID, 'index-pattern', { title: INDEX_PATTERN, timeFieldName: '@timestamp', fieldFormatMap: JSON.stringify(sortKeys(fieldFormatMap())) }, []);
}

function visAggs(p: VisualizationPanel): unknown[] {
  const aggs: unknown[] = p.metrics.map((m, i) => {
    const params = m.type === 'count' ? {} : m.type === 'percentiles' ? { field: m.field, percents: m.percents } : { field: m.field };
    return { id: metricId(i), enabled: true, type: m.type, schema: 'metric', params };
  });
  p.buckets.forEach((b, i) => {
    const bid = bucketId(p, i);
    // table rows are "bucket"s; in a chart the date histogram is the x axis ("segment"), a terms split makes series ("group")
    const schema = p.chart === 'table' ? 'bucket' : i === 0 ? 'segment' : 'group';
    if (b.type === 'date_histogram') {
      aggs.push({ id: bid, enabled: true, type: 'date_histogram', schema, params: { field: b.field, interval: 'auto', drop_partials: false, min_doc_count: 1, extended_bounds: {} } });
      return;
    }
    const params: Record<string, unknown> = { field: b.field, size: b.size, order: 'desc', otherBucket: false, otherBucketLabel: 'Other', missingBucket: false, missingBucketLabel: 'Missing' };
    if (b.orderBy === 'count') {
      params.orderBy = 'custom';
      params.orderAgg = { id: `${bid}-orderAgg`, enabled: true, type: 'count', schema: 'orderAgg', params: {} };
    } else params.orderBy = metricId(b.orderBy);
    aggs.push({ id: bid, enabled: true, type: 'terms', schema, params });
  });
  return aggs;
}

function chartParams(p: VisualizationPanel): Record<string, unknown> {
  if (p.chart === 'table') {
    return { perPage: 10, showPartialRows: false, showMetricsAtAllLevels: false, showTotal: false, totalFunc: 'sum', percentageCol: '', sort: { columnIndex: null, direction: null } };
  }
  const line = p.chart === 'line';
  return {
    type: p.chart,
    grid: { categoryLines: false },
    categoryAxes: [
      { id: 'CategoryAxis-1', type: 'category', position: 'bottom', show: true, style: {}, scale: { type: 'linear' }, labels: { show: true, filter: true, truncate: 100 }, title: {} },
    ],
    valueAxes: [
      {
        id: 'ValueAxis-1',
        name: 'LeftAxis-1',
        type: 'value',
        position: 'left',
        show: true,
        style: {},
        scale: { type: 'linear', mode: 'normal' },
        labels: { show: true, rotate: 0, filter: false, truncate: 100 },
        title: { text: p.valueAxisTitle ?? '' },
      },
    ],
    seriesParams: p.metrics.map((m, i) => ({
      show: true,
      type: line ? 'line' : 'histogram',
      mode: line ? 'normal' : 'stacked',
      data: { label: m.type === 'count' ? 'Count' : `${m.type} of ${m.field}`, id: metricId(i) },
      valueAxis: 'ValueAxis-1',
      drawLinesBetweenPoints: true,
      lineWidth: 2,
      interpolate: 'linear',
      showCircles: true,
    })),
    addTooltip: true,
    addLegend: true,
    legendPosition: 'right',
    times: [],
    addTimeMarker: false,
    labels: { show: false },
    thresholdLine: { show: false, value: 10, width: 1, style: 'full', color: '#E7664C' },
  };
}

function visualization(p: VisualizationPanel): SavedObject {
  const visState = { title: p.title, type: p.chart, aggs: visAggs(p), params: chartParams(p) };
  return object(
    p.id,
    'visualization',
    { title: p.title, description: p.description, version: 1, uiStateJSON: '{}', visState: JSON.stringify(visState), kibanaSavedObjectMeta: { searchSourceJSON: searchSource(p) } },
    [{ name: INDEX_REF, type: 'index-pattern', id: DATA_VIEW_ID }],
  );
}

function search(p: SearchPanel): SavedObject {
  return object(
    p.id,
    'search',
    { title: p.title, description: p.description, hits: 0, version: 1, columns: p.columns, sort: p.sort, kibanaSavedObjectMeta: { searchSourceJSON: searchSource(p) } },
    [{ name: INDEX_REF, type: 'index-pattern', id: DATA_VIEW_ID }],
  );
}

function dashboard(d: DashboardSpec, panels: ReadonlyMap<string, Panel>): SavedObject {
  const references: SavedObjectReference[] = [];
  const layout: unknown[] = [];
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  d.panels.forEach((slot, i) => {
    const panel = panels.get(slot.id);
    if (!panel) throw new Error(`dashboard ${d.id}: no panel ${slot.id}`);
    if (x + slot.width > GRID_COLUMNS) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const panelIndex = String(i + 1);
    layout.push({ version: '7.10.0', gridData: { x, y, w: slot.width, h: slot.height, i: panelIndex }, panelIndex, embeddableConfig: {}, panelRefName: `panel_${i}` });
    references.push({ name: `panel_${i}`, type: panel.kind, id: panel.id });
    x += slot.width;
    rowHeight = Math.max(rowHeight, slot.height);
  });
  return object(
    d.id,
    'dashboard',
    {
      title: d.title,
      description: d.description,
      hits: 0,
      version: 1,
      timeRestore: false,
      panelsJSON: JSON.stringify(layout),
      optionsJSON: JSON.stringify({ useMargins: true, hidePanelTitles: false }),
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ query: { query: '', language: 'kuery' }, filter: [] }) },
    },
    references,
  );
}

/** Every saved object, each before the objects that reference it. */
export function buildSavedObjects(panels: readonly Panel[] = PANELS, dashboards: readonly DashboardSpec[] = DASHBOARDS): SavedObject[] {
  const byId = new Map(panels.map((p) => [p.id, p]));
  return [dataView(), ...panels.map((p) => (p.kind === 'search' ? search(p) : visualization(p))), ...dashboards.map((d) => dashboard(d, byId))];
}

/** The import file: one object per line. */
export function toNdjson(objects: readonly SavedObject[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n') + '\n';
}
