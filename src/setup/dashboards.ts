/**
 * The dashboards `setup` installs: per-process latency, transactions (volume,
 * slowest, top HTTP paths, top queries) and errors. Each panel is a
 * description (src/setup/panels.ts) rendered into a saved object and, in the
 * tests, into the query it runs.
 *
 * The two processes of a transaction: `process.name` is the serving process
 * (destination.process when the server's socket was seen; the client's when
 * only it was), `source.process.name` the calling process (present when the
 * client's socket was seen on this host).
 */
import type { DashboardSpec, Filter, Metric, Panel } from './panels';

const DURATION = 'event.duration';
const COUNT: Metric = { type: 'count' };
const LATENCY: Metric = { type: 'percentiles', field: DURATION, percents: [50, 95, 99] };
const MAX_LATENCY: Metric = { type: 'max', field: DURATION };
const ERRORS: Filter = { is: { field: 'status', value: 'Error' } };
const DATABASES: Filter = { oneOf: { field: 'type', values: ['pgsql', 'mysql', 'redis'] } };
const HTTP: Filter = { is: { field: 'type', value: 'http' } };

const id = (name: string) => `packetbeat-ebpf-${name}`;

export const PANELS: readonly Panel[] = [
  // per-process latency
  {
    kind: 'visualization',
    id: id('latency-by-serving-process'),
    title: 'Latency by serving process (process.name)',
    description: 'p50/p95/p99 and max of event.duration (ns) per serving process, busiest first.',
    chart: 'table',
    metrics: [COUNT, LATENCY, MAX_LATENCY],
    buckets: [{ type: 'terms', field: 'process.name', size: 20, orderBy: 'count' }],
  },
  {
    kind: 'visualization',
    id: id('latency-by-calling-process'),
    title: 'Latency by calling process (source.process.name)',
    description: 'p50/p95/p99 and max of event.duration (ns) per calling process, busiest first (transactions whose client was seen on this host).',
    chart: 'table',
    metrics: [COUNT, LATENCY, MAX_LATENCY],
    buckets: [{ type: 'terms', field: 'source.process.name', size: 20, orderBy: 'count' }],
  },
  {
    kind: 'visualization',
    id: id('latency-calling-to-serving'),
    title: 'Latency from calling to serving process',
    description: 'p50/p95/p99 of event.duration (ns) per pair of calling and serving process.',
    chart: 'table',
    metrics: [COUNT, LATENCY],
    buckets: [
      { type: 'terms', field: 'source.process.name', size: 10, orderBy: 'count' },
      { type: 'terms', field: 'process.name', size: 10, orderBy: 'count' },
    ],
  },
  {
    kind: 'visualization',
    id: id('p95-over-time-by-serving-process'),
    title: 'p95 latency over time by serving process',
    description: '95th percentile of event.duration (ns) over time, one line per serving process (top 5 by volume).',
    chart: 'line',
    metrics: [{ type: 'percentiles', field: DURATION, percents: [95] }],
    buckets: [{ type: 'date_histogram', field: '@timestamp' }, { type: 'terms', field: 'process.name', size: 5, orderBy: 'count' }],
    valueAxisTitle: 'p95 event.duration',
  },
  // transactions
  {
    kind: 'visualization',
    id: id('volume-by-protocol'),
    title: 'Transactions over time by protocol',
    description: 'Transactions per interval, one series per protocol (type).',
    chart: 'histogram',
    metrics: [COUNT],
    buckets: [{ type: 'date_histogram', field: '@timestamp' }, { type: 'terms', field: 'type', size: 5, orderBy: 'count' }],
    valueAxisTitle: 'Transactions',
  },
  {
    kind: 'visualization',
    id: id('volume-by-serving-process'),
    title: 'Transactions over time by serving process',
    description: 'Transactions per interval, one series per serving process (top 10).',
    chart: 'line',
    metrics: [COUNT],
    buckets: [{ type: 'date_histogram', field: '@timestamp' }, { type: 'terms', field: 'process.name', size: 10, orderBy: 'count' }],
    valueAxisTitle: 'Transactions',
  },
  {
    kind: 'search',
    id: id('slowest-transactions'),
    title: 'Slowest transactions',
    description: 'Every transaction, slowest first.',
    columns: ['type', 'query', 'process.name', 'source.process.name', 'event.duration', 'status'],
    sort: [[DURATION, 'desc']],
  },
  {
    kind: 'visualization',
    id: id('slowest-queries'),
    title: 'Slowest requests and queries',
    description: 'Requests/queries (query) with the longest single event.duration (ns), with their p50/p95 and count.',
    chart: 'table',
    metrics: [MAX_LATENCY, { type: 'percentiles', field: DURATION, percents: [50, 95] }, COUNT],
    buckets: [{ type: 'terms', field: 'query', size: 20, orderBy: 0 }],
  },
  {
    kind: 'visualization',
    id: id('top-http-paths'),
    title: 'Top HTTP paths',
    description: 'Most requested url.path values, with p50/p95 of event.duration (ns).',
    chart: 'table',
    filter: HTTP,
    metrics: [COUNT, { type: 'percentiles', field: DURATION, percents: [50, 95] }],
    buckets: [{ type: 'terms', field: 'url.path', size: 20, orderBy: 'count' }],
  },
  {
    kind: 'visualization',
    id: id('top-queries'),
    title: 'Top database queries',
    description: 'Most frequent queries (PostgreSQL, MySQL, Redis) per protocol, with their average and p95 event.duration (ns).',
    chart: 'table',
    filter: DATABASES,
    metrics: [COUNT, { type: 'avg', field: DURATION }, { type: 'percentiles', field: DURATION, percents: [95] }],
    buckets: [
      { type: 'terms', field: 'type', size: 3, orderBy: 'count' },
      { type: 'terms', field: 'query', size: 20, orderBy: 'count' },
    ],
  },
  // errors
  {
    kind: 'visualization',
    id: id('errors-over-time'),
    title: 'Error transactions over time by protocol',
    description: 'Transactions with status Error (error responses, HTTP >= 400, unanswered requests) per interval and protocol.',
    chart: 'histogram',
    filter: ERRORS,
    metrics: [COUNT],
    buckets: [{ type: 'date_histogram', field: '@timestamp' }, { type: 'terms', field: 'type', size: 5, orderBy: 'count' }],
    valueAxisTitle: 'Errors',
  },
  {
    kind: 'visualization',
    id: id('errors-by-serving-process'),
    title: 'Error transactions by serving process',
    description: 'Transactions with status Error per serving process and protocol.',
    chart: 'table',
    filter: ERRORS,
    metrics: [COUNT],
    buckets: [
      { type: 'terms', field: 'process.name', size: 10, orderBy: 'count' },
      { type: 'terms', field: 'type', size: 5, orderBy: 'count' },
    ],
  },
  {
    kind: 'visualization',
    id: id('http-errors-by-status'),
    title: 'HTTP errors by status code',
    description: 'HTTP responses with status >= 400 per status code and path.',
    chart: 'table',
    filter: { atLeast: { field: 'http.response.status_code', value: 400 } },
    metrics: [COUNT],
    buckets: [
      { type: 'terms', field: 'http.response.status_code', size: 20, orderBy: 'count' },
      { type: 'terms', field: 'url.path', size: 10, orderBy: 'count' },
    ],
  },
  {
    kind: 'visualization',
    id: id('pgsql-errors'),
    title: 'PostgreSQL errors by SQLSTATE',
    description: 'PostgreSQL error responses per SQLSTATE and message.',
    chart: 'table',
    filter: { and: [{ is: { field: 'type', value: 'pgsql' } }, { exists: 'pgsql.error_code' }] },
    metrics: [COUNT],
    buckets: [
      { type: 'terms', field: 'pgsql.error_code', size: 20, orderBy: 'count' },
      { type: 'terms', field: 'pgsql.error_message', size: 5, orderBy: 'count' },
    ],
  },
  {
    kind: 'visualization',
    id: id('mysql-errors'),
    title: 'MySQL errors by code',
    description: 'MySQL/MariaDB error packets per error code and message.',
    chart: 'table',
    filter: { and: [{ is: { field: 'type', value: 'mysql' } }, { exists: 'mysql.error_code' }] },
    metrics: [COUNT],
    buckets: [
      { type: 'terms', field: 'mysql.error_code', size: 20, orderBy: 'count' },
      { type: 'terms', field: 'mysql.error_message', size: 5, orderBy: 'count' },
    ],
  },
  {
    kind: 'visualization',
    id: id('redis-errors'),
    title: 'Redis errors',
    description: 'Redis error replies per message and command.',
    chart: 'table',
    filter: { and: [{ is: { field: 'type', value: 'redis' } }, { exists: 'redis.error' }] },
    metrics: [COUNT],
    buckets: [
      { type: 'terms', field: 'redis.error', size: 20, orderBy: 'count' },
      { type: 'terms', field: 'method', size: 5, orderBy: 'count' },
    ],
  },
  {
    kind: 'search',
    id: id('error-transactions'),
    title: 'Error transactions',
    description: 'Every transaction with status Error, latest first.',
    filter: ERRORS,
    columns: ['type', 'query', 'process.name', 'source.process.name', 'http.response.status_code', 'pgsql.error_code', 'mysql.error_code', 'redis.error', 'error.message'],
    sort: [['@timestamp', 'desc']],
  },
];

export const DASHBOARDS: readonly DashboardSpec[] = [
  {
    id: id('dashboard-latency'),
    title: '[packetbeat-ebpf] Per-process latency',
    description: 'Latency percentiles of event.duration per serving process (process.name) and calling process (source.process.name).',
    panels: [
      { id: id('latency-by-serving-process'), width: 24, height: 15 },
      { id: id('latency-by-calling-process'), width: 24, height: 15 },
      { id: id('p95-over-time-by-serving-process'), width: 48, height: 15 },
      { id: id('latency-calling-to-serving'), width: 48, height: 15 },
    ],
  },
  {
    id: id('dashboard-transactions'),
    title: '[packetbeat-ebpf] Transactions',
    description: 'Volume over time, slowest transactions, top HTTP paths and top queries.',
    panels: [
      { id: id('volume-by-protocol'), width: 24, height: 12 },
      { id: id('volume-by-serving-process'), width: 24, height: 12 },
      { id: id('slowest-transactions'), width: 48, height: 15 },
      { id: id('slowest-queries'), width: 48, height: 15 },
      { id: id('top-http-paths'), width: 24, height: 15 },
      { id: id('top-queries'), width: 24, height: 15 },
    ],
  },
  {
    id: id('dashboard-errors'),
    title: '[packetbeat-ebpf] Errors',
    description: 'Error transactions by protocol, serving process, HTTP status code and database error code.',
    panels: [
      { id: id('errors-over-time'), width: 24, height: 12 },
      { id: id('errors-by-serving-process'), width: 24, height: 12 },
      { id: id('http-errors-by-status'), width: 24, height: 15 },
      { id: id('pgsql-errors'), width: 24, height: 15 },
      { id: id('mysql-errors'), width: 24, height: 15 },
      { id: id('redis-errors'), width: 24, height: 15 },
      { id: id('error-transactions'), width: 48, height: 15 },
    ],
  },
];
