/**
 * Every field a transaction document carries, with its mapping type: the one
 * place the index template, the Kibana data view and the dashboards are
 * generated from. test/unit/publish/fields.test.ts replays every capture the
 * tests use with every option on and fails on a field missing here.
 *
 * Types follow ECS where ECS defines the field, and Packetbeat's fields.yml for
 * its own (type, status, method, query, http.*, mysql.*, pgsql.*, redis.*):
 * identifiers and anything aggregated are `keyword`; long free text (raw
 * request/response, bodies) is `text`; free text users also group by (query,
 * url.full, error messages, user agent) is `keyword` with a `.text` multi-field
 * for full-text search, as ECS does (`match_only_text` and `wildcard` are not
 * in OpenSearch, so plain `text` and `keyword`). Numbers are `long` (byte
 * counts, ports, durations in ns, row counts), times `date`, addresses `ip`.
 */

export type FieldType = 'keyword' | 'text' | 'long' | 'date' | 'ip' | 'boolean';

export interface FieldDef {
  type: FieldType;
  description: string;
  /** keyword fields: also indexed as full text under `<name>.text`. */
  text?: boolean;
}

/**
 * An object whose keys come from the traffic (HTTP header names, and with
 * split_cookie the cookie names under cookie / set-cookie). Mapped as an
 * `object` with dynamic mapping on and a dynamic template turning every string
 * under it into a keyword: searchable and aggregatable per header in both
 * Elasticsearch and OpenSearch. (`flattened` is Elasticsearch-only and
 * `flat_object` OpenSearch-only; Packetbeat maps headers the same way.) The
 * bounds: index.mapping.total_fields.limit, and a header name seen once as a
 * value and once as an object (a cookie split in one agent and redacted in
 * another) cannot share an index.
 */
export interface FreeFormDef {
  type: 'free-form';
  description: string;
  /** Members with a fixed type (e.g. content-length, always a number). */
  known: Record<string, FieldDef>;
}

/** Longest keyword value indexed (longer ones stay in _source, unindexed), as Beats. */
export const KEYWORD_IGNORE_ABOVE = 1024;

const kw = (description: string, text = false): FieldDef => (text ? { type: 'keyword', description, text } : { type: 'keyword', description });
const long = (description: string): FieldDef => ({ type: 'long', description });
const date = (description: string): FieldDef => ({ type: 'date', description });
const ip = (description: string): FieldDef => ({ type: 'ip', description });
const text = (description: string): FieldDef => ({ type: 'text', description });

/** process.*, source.process.*, destination.process.*: one shape. */
function processFields(prefix: string, whose: string): Record<string, FieldDef> {
  return {
    [`${prefix}.pid`]: long(`Process id of ${whose}.`),
    [`${prefix}.name`]: kw(`Process name (comm) of ${whose}.`, true),
    [`${prefix}.parent.pid`]: long(`Parent process id of ${whose}.`),
    [`${prefix}.executable`]: kw(`Absolute path of the executable of ${whose}.`, true),
    [`${prefix}.args`]: kw(`Command line of ${whose}, one value per argument.`),
    [`${prefix}.args_count`]: long(`Number of arguments of ${whose}.`),
    [`${prefix}.working_directory`]: kw(`Working directory of ${whose}.`, true),
    [`${prefix}.start`]: date(`When ${whose} started.`),
    [`${prefix}.user.id`]: kw(`User id ${whose} runs as.`),
    [`${prefix}.user.name`]: kw(`User name ${whose} runs as.`, true),
  };
}

/** Endpoint fields, the same under source/destination/client/server (domain: the server's only). */
function endpointFields(prefix: string, whose: string): Record<string, FieldDef> {
  const fields: Record<string, FieldDef> = {
    [`${prefix}.ip`]: ip(`IP address of ${whose}.`),
    [`${prefix}.port`]: long(`TCP port of ${whose}.`),
    [`${prefix}.bytes`]: long(`Bytes ${whose} sent in this transaction.`),
  };
  if (whose === 'the server') fields[`${prefix}.domain`] = kw('Domain of the server (HTTP Host header).');
  return fields;
}

function bodyFields(prefix: string, what: string): Record<string, FieldDef> {
  return {
    [`${prefix}.bytes`]: long(`Bytes of the ${what}.`),
    [`${prefix}.mime_type`]: kw(`MIME type of the ${what} body, sniffed from its content.`),
    [`${prefix}.body.bytes`]: long(`Bytes of the ${what} body.`),
    [`${prefix}.body.content`]: text(`The ${what} body (include_body_for).`),
  };
}

/** Every field with a fixed type, by dotted path. */
export const FIELDS: Readonly<Record<string, FieldDef>> = {
  '@timestamp': date('When the request started (its first byte).'),
  type: kw('Protocol of the transaction (http, pgsql, mysql, redis).'),
  status: kw('OK, or Error (error response, status >= 400, unanswered).'),
  method: kw('Request method, SQL keyword or Redis command.'),
  query: kw('"METHOD /path" for HTTP, the statement for SQL, the command line for Redis.', true),
  resource: kw('Redis: the key (first argument).'),
  path: kw('MySQL: db.table of the result columns.'),
  params: kw('MySQL: bound parameters of a prepared statement.'),
  request: text('Raw request (send_request).'),
  response: text('Raw response, or a result set as CSV (send_response).'),
  tags: kw('Tags from the configuration.'),

  'agent.type': kw('Always packetbeat-ebpf.'),
  'agent.name': kw('Host name of the agent.'),
  'agent.version': kw('Version of the agent.'),
  'ecs.version': kw('ECS version the document follows.'),
  'host.hostname': kw('Host name.'),
  'host.name': kw('Host name.'),
  'host.architecture': kw('CPU architecture of the host.'),
  'container.id': kw('Container of the serving (else the calling) process.'),

  'event.kind': kw('Always event.'),
  'event.id': kw('Deterministic transaction id (the document _id).'),
  'event.category': kw('Always network.'),
  'event.type': kw('connection and protocol.'),
  'event.dataset': kw('Protocol of the transaction.'),
  'event.action': kw('Redis: redis.<command>.'),
  'event.outcome': kw('success, failure or unknown (no response).'),
  'event.start': date('First byte of the request.'),
  'event.end': date('Last byte of the response.'),
  'event.duration': long('What the client waited, in nanoseconds.'),

  ...endpointFields('source', 'the client'),
  ...endpointFields('destination', 'the server'),
  ...endpointFields('client', 'the client'),
  ...endpointFields('server', 'the server'),
  ...processFields('process', 'the serving process (the calling one when only it was seen)'),
  ...processFields('source.process', 'the calling process'),
  ...processFields('destination.process', 'the serving process'),

  'network.transport': kw('Always tcp.'),
  'network.protocol': kw('Protocol of the transaction.'),
  'network.type': kw('ipv4 or ipv6.'),
  'network.bytes': long('Bytes of request and response.'),
  'network.community_id': kw('Community ID of the flow.'),
  'network.forwarded_ip': ip('Client address from the real_ip_header (e.g. X-Forwarded-For).'),
  'related.ip': ip('Both addresses.'),
  'related.hosts': kw('Host names seen (HTTP Host).'),
  'related.user': kw('User names seen (Basic auth, database login).'),
  'user.name': kw('User of the request (Basic auth, database login).', true),
  'error.message': kw('Notes on an incomplete transaction (unmatched, packet loss).', true),

  'http.version': kw('HTTP version.'),
  ...bodyFields('http.request', 'request'),
  'http.request.method': kw('HTTP request method.'),
  'http.request.referrer': kw('Referer header.'),
  ...bodyFields('http.response', 'response'),
  'http.response.status_code': long('HTTP status code.'),
  'http.response.status_phrase': kw('HTTP status phrase, lower-cased.'),
  'url.scheme': kw('URL scheme.'),
  'url.domain': kw('Host of the URL.'),
  'url.port': long('Port of the URL when not 80.'),
  'url.path': kw('Path of the URL.'),
  'url.query': kw('Query string (and form parameters), sorted, hidden keywords masked.'),
  'url.extension': kw('Extension of the path.'),
  'url.full': kw('The full URL.', true),
  'user_agent.original': kw('User-Agent header.', true),

  'db.system': kw('postgresql, mysql or redis.'),
  'db.name': kw('Database (schema) in use.'),
  'db.user': kw('Database login user.'),
  'db.statement': kw('The SQL statement.', true),

  'pgsql.num_rows': long('Rows returned.'),
  'pgsql.num_fields': long('Columns returned.'),
  'pgsql.rows_affected': long('Rows affected (from the command tag).'),
  'pgsql.error_code': kw('SQLSTATE of the error.'),
  'pgsql.error_message': kw('Error message.', true),
  'pgsql.error_severity': kw('Error severity (ERROR, FATAL, ...).'),
  'mysql.affected_rows': long('Rows affected.'),
  'mysql.insert_id': long('Last insert id.'),
  'mysql.num_rows': long('Rows returned.'),
  'mysql.num_fields': long('Columns returned.'),
  'mysql.error_code': long('MySQL error number.'),
  'mysql.error_message': kw('"<SQLSTATE>: <message>".', true),
  'mysql.compressed': { type: 'boolean', description: 'The connection uses the compressed protocol (not decoded).' },
  'redis.return_value': kw('Short rendering of the reply.', true),
  'redis.error': kw('Error reply.', true),

  'packetbeat_ebpf.views': kw('Which sockets saw the transaction: client, server, or wire.'),
  'packetbeat_ebpf.client_duration': long('Duration as the client saw it, in nanoseconds (= event.duration).'),
  'packetbeat_ebpf.server_duration': long("The server's own time (request read to response written), in nanoseconds."),
  'packetbeat_ebpf.unattributed': { type: 'boolean', description: 'No end could be attributed to a process (packet mode: remote hosts, sockets gone before /proc was read).' },
};

/** Objects whose keys come from the traffic, by dotted path. */
export const FREE_FORM: Readonly<Record<string, FreeFormDef>> = {
  'http.request.headers': {
    type: 'free-form',
    description: 'Request headers by lower-cased name (content-length and content-type always; others with send_headers / send_all_headers).',
    known: { 'content-length': long('Length of the request body.') },
  },
  'http.response.headers': {
    type: 'free-form',
    description: 'Response headers by lower-cased name (content-length and content-type always; others with send_headers / send_all_headers).',
    known: { 'content-length': long('Length of the response body.') },
  },
};

export type FieldLookup =
  | { kind: 'field'; path: string; def: FieldDef }
  | { kind: 'free-form'; path: string; object: string; def: FieldDef | undefined }
  | { kind: 'unknown'; path: string };

/** What the inventory says of a dotted leaf path. */
export function lookupField(path: string): FieldLookup {
  const def = FIELDS[path];
  if (def) return { kind: 'field', path, def };
  for (const [object, ff] of Object.entries(FREE_FORM)) {
    if (path.startsWith(`${object}.`)) return { kind: 'free-form', path, object, def: ff.known[path.slice(object.length + 1)] };
  }
  return { kind: 'unknown', path };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** The long range Elasticsearch accepts; JS numbers beyond 2^53 lose precision already. */
const LONG_MIN = -(2 ** 63);
const LONG_MAX = 2 ** 63 - 1;

function isIp(v: string): boolean {
  if (IPV4.test(v)) return true;
  // IPv6 (with an optional embedded IPv4 tail): hex groups, at most one "::"
  if (!/^[0-9a-fA-F:.]+$/.test(v) || !v.includes(':')) return false;
  const parts = v.split('::');
  if (parts.length > 2) return false;
  const groups = parts.flatMap((p) => (p === '' ? [] : p.split(':')));
  const last = groups[groups.length - 1] ?? '';
  const v4 = last.includes('.');
  if (v4 && !IPV4.test(last)) return false;
  const hex = v4 ? groups.slice(0, -1) : groups;
  if (!hex.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  const count = hex.length + (v4 ? 2 : 0);
  return parts.length === 2 ? count < 8 : count === 8;
}

/** Does one value (not an array) fit the mapping type as Elasticsearch/OpenSearch would index it? */
export function valueFits(type: FieldType, v: unknown): boolean {
  switch (type) {
    case 'keyword':
    case 'text':
      return typeof v === 'string';
    case 'long':
      return typeof v === 'number' && Number.isInteger(v) && v >= LONG_MIN && v <= LONG_MAX;
    case 'date':
      // ISO 8601 as toISOString() writes it: the default strict_date_optional_time parses it
      return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v));
    case 'ip':
      return typeof v === 'string' && isIp(v);
    case 'boolean':
      return typeof v === 'boolean';
  }
}

/** Types a terms/percentiles/histogram aggregation can run on (doc values). */
export function isAggregatable(type: FieldType): boolean {
  return type !== 'text';
}
