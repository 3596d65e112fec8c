/**
 * Transaction document → what the OTLP output exports for it: one span per
 * view (SpanKind CLIENT for the client process's view, SERVER for the
 * server's), each with the Resource of its process and the duration histogram
 * it feeds. Pure data, no SDK objects: the output turns these into spans.
 *
 * Attributes come from the document (so processors that drop fields drop them
 * here too); times and each process's container come from the views the
 * pipeline linked to the document (see publish/document.ts viewsOf).
 */
import { SpanKind, SpanStatusCode, type Attributes, type HrTime, type SpanStatus } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_CONTAINER_ID,
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NETWORK_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
  DB_SYSTEM_NAME_VALUE_MYSQL,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
  HTTP_REQUEST_METHOD_VALUE_CONNECT,
  HTTP_REQUEST_METHOD_VALUE_DELETE,
  HTTP_REQUEST_METHOD_VALUE_GET,
  HTTP_REQUEST_METHOD_VALUE_HEAD,
  HTTP_REQUEST_METHOD_VALUE_OPTIONS,
  HTTP_REQUEST_METHOD_VALUE_OTHER,
  HTTP_REQUEST_METHOD_VALUE_PATCH,
  HTTP_REQUEST_METHOD_VALUE_POST,
  HTTP_REQUEST_METHOD_VALUE_PUT,
  HTTP_REQUEST_METHOD_VALUE_TRACE,
  METRIC_DB_CLIENT_OPERATION_DURATION,
  METRIC_HTTP_CLIENT_REQUEST_DURATION,
  METRIC_HTTP_SERVER_REQUEST_DURATION,
  NETWORK_TRANSPORT_VALUE_TCP,
  NETWORK_TYPE_VALUE_IPV4,
  NETWORK_TYPE_VALUE_IPV6,
} from '@opentelemetry/semantic-conventions';
import { viewsOf, type TxnDocument, type ViewTiming } from '../../publish/document';
import {
  ATTR_DB_RESPONSE_RETURNED_ROWS,
  ATTR_HOST_ARCH,
  ATTR_HOST_NAME,
  ATTR_HTTP_REQUEST_BODY_SIZE,
  ATTR_HTTP_REQUEST_SIZE,
  ATTR_HTTP_RESPONSE_BODY_SIZE,
  ATTR_HTTP_RESPONSE_SIZE,
  ATTR_PROCESS_COMMAND,
  ATTR_PROCESS_COMMAND_ARGS,
  ATTR_PROCESS_COMMAND_LINE,
  ATTR_PROCESS_CREATION_TIME,
  ATTR_PROCESS_EXECUTABLE_NAME,
  ATTR_PROCESS_EXECUTABLE_PATH,
  ATTR_PROCESS_OWNER,
  ATTR_PROCESS_PARENT_PID,
  ATTR_PROCESS_PID,
  ATTR_PROCESS_USER_ID,
  ATTR_PROCESS_WORKING_DIRECTORY,
  DB_SYSTEM_NAME_VALUE_REDIS,
  ERROR_TYPE_NO_REQUEST,
  ERROR_TYPE_NO_RESPONSE,
  METRIC_DB_SERVER_OPERATION_DURATION,
} from './semconv';

export type ViewSide = 'client' | 'server';

/** The Resource of one process (or of the wire, for views no socket saw); `key` names it. */
export interface ProcessResource {
  key: string;
  attributes: Attributes;
}

export interface MetricPoint {
  name: string;
  durationS: number;
  attributes: Attributes;
}

export interface SpanDescription {
  side: ViewSide;
  kind: SpanKind;
  name: string;
  start: HrTime;
  end: HrTime;
  attributes: Attributes;
  status: SpanStatus;
  resource: ProcessResource;
  metric: MetricPoint;
}

export interface DescribeContext {
  hostName: string;
  /** host.arch value (amd64, arm64, ...). */
  hostArch?: string;
}

/** The key of the Resource of views that no process owns (pcap replay, packet capture). */
export const WIRE_RESOURCE_KEY = 'wire';
/** service.name when no process is known (the conventions' default). */
const UNKNOWN_SERVICE = 'unknown_service';

/** Methods the conventions know; any other becomes _OTHER (bounded cardinality). */
const HTTP_METHODS = new Set<string>([
  HTTP_REQUEST_METHOD_VALUE_CONNECT,
  HTTP_REQUEST_METHOD_VALUE_DELETE,
  HTTP_REQUEST_METHOD_VALUE_GET,
  HTTP_REQUEST_METHOD_VALUE_HEAD,
  HTTP_REQUEST_METHOD_VALUE_OPTIONS,
  HTTP_REQUEST_METHOD_VALUE_PATCH,
  HTTP_REQUEST_METHOD_VALUE_POST,
  HTTP_REQUEST_METHOD_VALUE_PUT,
  HTTP_REQUEST_METHOD_VALUE_TRACE,
]);

const DB_SYSTEMS: Record<string, string> = {
  pgsql: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
  mysql: DB_SYSTEM_NAME_VALUE_MYSQL,
  redis: DB_SYSTEM_NAME_VALUE_REDIS,
};

/** Metric attributes per instrument: the conventions' low-cardinality subset of the span's. */
const METRIC_KEYS: Record<string, readonly string[]> = {
  [METRIC_HTTP_SERVER_REQUEST_DURATION]: [
    ATTR_HTTP_REQUEST_METHOD,
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_URL_SCHEME,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    ATTR_ERROR_TYPE,
  ],
  [METRIC_HTTP_CLIENT_REQUEST_DURATION]: [
    ATTR_HTTP_REQUEST_METHOD,
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_SERVER_ADDRESS,
    ATTR_SERVER_PORT,
    ATTR_URL_SCHEME,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    ATTR_ERROR_TYPE,
  ],
  [METRIC_DB_CLIENT_OPERATION_DURATION]: [
    ATTR_DB_SYSTEM_NAME,
    ATTR_DB_OPERATION_NAME,
    ATTR_DB_NAMESPACE,
    ATTR_DB_RESPONSE_STATUS_CODE,
    ATTR_SERVER_ADDRESS,
    ATTR_SERVER_PORT,
    ATTR_ERROR_TYPE,
  ],
  [METRIC_DB_SERVER_OPERATION_DURATION]: [ATTR_DB_SYSTEM_NAME, ATTR_DB_OPERATION_NAME, ATTR_DB_NAMESPACE, ATTR_DB_RESPONSE_STATUS_CODE, ATTR_ERROR_TYPE],
};

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
/** Set only defined values (attributes never carry undefined). */
function put(attrs: Attributes, key: string, value: string | number | string[] | undefined): void {
  if (value !== undefined) attrs[key] = value;
}

const NS_PER_S = 1e9;

/** Wall-clock ms (fractional) → [s, ns]. */
export function hrTimeOfMs(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  const ns = Math.min(NS_PER_S - 1, Math.max(0, Math.round((ms - s * 1000) * 1e6)));
  return [s, ns];
}

function addNs([s, ns]: HrTime, add: number): HrTime {
  const total = ns + add;
  return [s + Math.floor(total / NS_PER_S), total % NS_PER_S];
}

/** Views of a document not linked to its transaction: the main view from the document's own fields. */
function viewsFromDocument(doc: Obj): Array<[ViewSide, ViewTiming]> {
  const event = obj(doc.event);
  const startMs = Date.parse(str(event?.start) ?? '');
  if (Number.isNaN(startMs)) return [];
  const ebpf = obj(doc.packetbeat_ebpf);
  const at = (durationNs: number): ViewTiming => ({ startMs, endMs: startMs + durationNs / 1e6, durationNs });
  const out: Array<[ViewSide, ViewTiming]> = [];
  const clientNs = num(ebpf?.client_duration);
  const serverNs = num(ebpf?.server_duration);
  if (clientNs !== undefined) out.push(['client', at(clientNs)]);
  if (serverNs !== undefined) out.push(['server', at(serverNs)]);
  if (out.length === 0) out.push(['server', at(num(event?.duration) ?? 0)]);
  return out;
}

/** The Resource of a view's process, from the document's process object. */
export function processResource(proc: Obj | undefined, containerId: string | undefined, ctx: DescribeContext): ProcessResource {
  const attributes: Attributes = {};
  put(attributes, ATTR_HOST_NAME, ctx.hostName);
  put(attributes, ATTR_HOST_ARCH, ctx.hostArch);
  const pid = num(proc?.pid);
  if (!proc || pid === undefined) {
    attributes[ATTR_SERVICE_NAME] = UNKNOWN_SERVICE;
    put(attributes, ATTR_CONTAINER_ID, containerId);
    return { key: containerId ? `${WIRE_RESOURCE_KEY}/${containerId}` : WIRE_RESOURCE_KEY, attributes };
  }
  const executable = str(proc.executable);
  // the conventions: the base name of /proc/PID/exe, else the kernel's comm
  const exeName = (executable && executable.slice(executable.lastIndexOf('/') + 1)) || str(proc.name) || UNKNOWN_SERVICE;
  const args = Array.isArray(proc.args) ? proc.args.filter((a): a is string => typeof a === 'string') : [];
  // a rewritten process title (postgres: "postgres: user db host idle") leaves empty arguments behind
  while (args.length > 0 && args[args.length - 1] === '') args.pop();
  const user = obj(proc.user);
  const start = str(proc.start);
  attributes[ATTR_SERVICE_NAME] = serviceName(str(proc.name), exeName);
  attributes[ATTR_PROCESS_PID] = pid;
  put(attributes, ATTR_PROCESS_PARENT_PID, num(obj(proc.parent)?.pid));
  attributes[ATTR_PROCESS_EXECUTABLE_NAME] = exeName;
  put(attributes, ATTR_PROCESS_EXECUTABLE_PATH, executable);
  if (args.length > 0) {
    attributes[ATTR_PROCESS_COMMAND] = args[0];
    attributes[ATTR_PROCESS_COMMAND_ARGS] = args;
    attributes[ATTR_PROCESS_COMMAND_LINE] = args.join(' ');
  }
  put(attributes, ATTR_PROCESS_OWNER, str(user?.name));
  const uid = Number(user?.id);
  if (user?.id !== undefined && Number.isInteger(uid)) attributes[ATTR_PROCESS_USER_ID] = uid;
  put(attributes, ATTR_PROCESS_CREATION_TIME, start);
  put(attributes, ATTR_PROCESS_WORKING_DIRECTORY, str(proc.working_directory));
  put(attributes, ATTR_CONTAINER_ID, containerId);
  // pid and start time name a process across pid reuse; the path guards a missing start
  return { key: `${pid}/${start ?? ''}/${executable ?? exeName}/${containerId ?? ''}`, attributes };
}

/** Longest command name the kernel keeps (TASK_COMM_LEN - 1). */
const COMM_MAX = 15;

/**
 * service.name: the command name as the process was started (the kernel's
 * comm: "redis-server", where /proc/PID/exe names the file it links to,
 * redis-check-rdb), but the executable's full name when comm is it, cut.
 */
function serviceName(comm: string | undefined, exeName: string): string {
  if (!comm) return exeName;
  return comm.length === COMM_MAX && exeName.startsWith(comm) ? exeName : comm;
}

// documents share their process objects (publish/document.ts): one Resource each, built once
const resourceCache = new WeakMap<Obj, Map<string, ProcessResource>>();
/** The stand-in for views no process owns. */
const NO_PROCESS: Obj = {};

function cachedProcessResource(proc: Obj | undefined, containerId: string | undefined, ctx: DescribeContext): ProcessResource {
  let byContainer = resourceCache.get(proc ?? NO_PROCESS);
  if (!byContainer) {
    byContainer = new Map();
    resourceCache.set(proc ?? NO_PROCESS, byContainer);
  }
  const key = `${containerId ?? ''}\0${ctx.hostName}\0${ctx.hostArch ?? ''}`;
  let r = byContainer.get(key);
  if (!r) {
    r = processResource(proc, containerId, ctx);
    byContainer.set(key, r);
  }
  return r;
}

function normalizedMethod(method: string | undefined): { method: string; original?: string } | undefined {
  if (!method) return undefined;
  if (HTTP_METHODS.has(method)) return { method };
  const upper = method.toUpperCase();
  if (HTTP_METHODS.has(upper)) return { method: upper, original: method };
  return { method: HTTP_REQUEST_METHOD_VALUE_OTHER, original: method };
}

/** Span name, attributes, status and metric name of one view of an HTTP transaction. */
function httpView(doc: Obj, side: ViewSide, seen: { request: boolean; response: boolean }, attrs: Attributes) {
  const http = obj(doc.http);
  const request = obj(http?.request);
  const response = obj(http?.response);
  const url = obj(doc.url);
  const source = obj(doc.source);
  const destination = obj(doc.destination);
  const m = normalizedMethod(str(request?.method) ?? str(doc.method));
  put(attrs, ATTR_HTTP_REQUEST_METHOD, m?.method);
  put(attrs, ATTR_HTTP_REQUEST_METHOD_ORIGINAL, m?.original);
  const status = num(response?.status_code);
  put(attrs, ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  put(attrs, ATTR_URL_SCHEME, str(url?.scheme));
  put(attrs, ATTR_URL_PATH, str(url?.path));
  put(attrs, ATTR_URL_QUERY, str(url?.query));
  if (side === 'client') put(attrs, ATTR_URL_FULL, str(url?.full));
  // server.*: what the client asked for (Host header), else where it connected
  put(attrs, ATTR_SERVER_ADDRESS, str(url?.domain) ?? str(destination?.domain) ?? str(destination?.ip));
  put(attrs, ATTR_SERVER_PORT, num(url?.port) ?? num(destination?.port));
  put(attrs, ATTR_USER_AGENT_ORIGINAL, str(obj(doc.user_agent)?.original));
  put(attrs, ATTR_NETWORK_PROTOCOL_NAME, 'http');
  put(attrs, ATTR_NETWORK_PROTOCOL_VERSION, str(http?.version));
  put(attrs, ATTR_HTTP_REQUEST_SIZE, num(request?.bytes));
  put(attrs, ATTR_HTTP_RESPONSE_SIZE, num(response?.bytes));
  put(attrs, ATTR_HTTP_REQUEST_BODY_SIZE, num(obj(request?.body)?.bytes));
  put(attrs, ATTR_HTTP_RESPONSE_BODY_SIZE, num(obj(response?.body)?.bytes));
  if (side === 'server') {
    put(attrs, ATTR_CLIENT_ADDRESS, str(source?.ip));
    put(attrs, ATTR_CLIENT_PORT, num(source?.port));
  }
  // the conventions: a server fails on 5xx, a client on 4xx too
  let errorType: string | undefined;
  let message: string | undefined;
  if (!seen.response) {
    errorType = ERROR_TYPE_NO_RESPONSE;
    message = errorMessage(doc);
  } else if (!seen.request) {
    errorType = ERROR_TYPE_NO_REQUEST;
    message = errorMessage(doc);
  } else if (status !== undefined && status >= (side === 'server' ? 500 : 400)) {
    errorType = String(status);
  }
  put(attrs, ATTR_ERROR_TYPE, errorType);
  const name = m && m.method !== HTTP_REQUEST_METHOD_VALUE_OTHER ? m.method : 'HTTP';
  const metric = side === 'server' ? METRIC_HTTP_SERVER_REQUEST_DURATION : METRIC_HTTP_CLIENT_REQUEST_DURATION;
  return { name, errorType, message, metric };
}

function errorMessage(doc: Obj): string | undefined {
  const m = obj(doc.error)?.message;
  return Array.isArray(m) ? m.filter((x) => typeof x === 'string').join('; ') : str(m);
}

/** Span name, attributes, status and metric name of one view of a database transaction. */
function dbView(doc: Obj, protocol: string, side: ViewSide, seen: { request: boolean; response: boolean }, attrs: Attributes) {
  const system = DB_SYSTEMS[protocol];
  const db = obj(doc.db);
  const own = obj(doc[protocol]);
  const destination = obj(doc.destination);
  attrs[ATTR_DB_SYSTEM_NAME] = system;
  const operation = str(doc.method);
  const namespace = str(db?.name);
  put(attrs, ATTR_DB_OPERATION_NAME, operation);
  put(attrs, ATTR_DB_QUERY_TEXT, str(doc.query));
  put(attrs, ATTR_DB_NAMESPACE, namespace);
  put(attrs, ATTR_SERVER_ADDRESS, str(destination?.domain) ?? str(destination?.ip));
  put(attrs, ATTR_SERVER_PORT, num(destination?.port));
  if (side === 'server') {
    const source = obj(doc.source);
    put(attrs, ATTR_CLIENT_ADDRESS, str(source?.ip));
    put(attrs, ATTR_CLIENT_PORT, num(source?.port));
  }
  // the database's own error code: SQLSTATE, MySQL's error number, Redis's error prefix
  let code: string | undefined;
  let message: string | undefined;
  if (protocol === 'pgsql') {
    code = str(own?.error_code);
    message = str(own?.error_message);
  } else if (protocol === 'mysql') {
    const n = num(own?.error_code);
    code = n !== undefined ? String(n) : undefined;
    message = str(own?.error_message);
  } else if (protocol === 'redis') {
    message = str(own?.error);
    code = message ? /^[A-Z][A-Z_-]*/.exec(message)?.[0] : undefined;
    if (message && !code) code = 'ERR';
  }
  put(attrs, ATTR_DB_RESPONSE_STATUS_CODE, code);
  if (seen.response) put(attrs, ATTR_DB_RESPONSE_RETURNED_ROWS, num(own?.num_rows));
  let errorType = code;
  if (!seen.response) {
    errorType = ERROR_TYPE_NO_RESPONSE;
    message = errorMessage(doc);
  } else if (!seen.request) {
    errorType = ERROR_TYPE_NO_REQUEST;
    message = errorMessage(doc);
  } else if (!code && obj(doc.event)?.outcome === 'failure') {
    errorType = '_OTHER';
  }
  put(attrs, ATTR_ERROR_TYPE, errorType);
  const name = operation ? (namespace ? `${operation} ${namespace}` : operation) : (namespace ?? system);
  const metric = side === 'client' ? METRIC_DB_CLIENT_OPERATION_DURATION : METRIC_DB_SERVER_OPERATION_DURATION;
  return { name, errorType, message, metric };
}

/**
 * The spans of one transaction document, client view first (the server's span
 * is its child when both were seen). Empty for a document of an unknown
 * protocol or without any timing.
 */
export function describeDocument(doc: TxnDocument, ctx: DescribeContext): SpanDescription[] {
  const d = doc as Obj;
  const network = obj(d.network);
  const protocol = str(d.type) ?? str(network?.protocol);
  if (protocol !== 'http' && !(protocol !== undefined && protocol in DB_SYSTEMS)) return [];
  const linked = viewsOf(doc);
  const views: Array<[ViewSide, ViewTiming]> = linked
    ? (['client', 'server'] as const).flatMap((side) => (linked[side] ? [[side, linked[side]] as [ViewSide, ViewTiming]] : []))
    : viewsFromDocument(d);
  const seen = {
    request: str(d.method) !== undefined || str(d.query) !== undefined || obj(obj(d.http)?.request)?.method !== undefined,
    response: obj(d.event)?.outcome !== 'unknown',
  };
  const source = obj(d.source);
  const destination = obj(d.destination);
  const docContainer = str(obj(d.container)?.id);
  const type = str(network?.type);
  const networkType = type === 'ipv6' ? NETWORK_TYPE_VALUE_IPV6 : type === 'ipv4' ? NETWORK_TYPE_VALUE_IPV4 : undefined;

  return views.map(([side, view]) => {
    const attributes: Attributes = { [ATTR_NETWORK_TRANSPORT]: NETWORK_TRANSPORT_VALUE_TCP };
    put(attributes, ATTR_NETWORK_TYPE, networkType);
    const v = protocol === 'http' ? httpView(d, side, seen, attributes) : dbView(d, protocol, side, seen, attributes);
    // the peer: the server for the client's socket, the client for the server's
    const peer = side === 'client' ? destination : source;
    put(attributes, ATTR_NETWORK_PEER_ADDRESS, str(peer?.ip));
    put(attributes, ATTR_NETWORK_PEER_PORT, num(peer?.port));
    const proc = obj((side === 'client' ? source : destination)?.process);
    // container.id only when the document kept it (processors may drop it)
    const containerId = docContainer !== undefined ? (view.process?.containerId ?? (linked ? undefined : docContainer)) : undefined;
    const start = hrTimeOfMs(view.startMs);
    const metricAttributes: Attributes = {};
    for (const k of METRIC_KEYS[v.metric]) if (attributes[k] !== undefined) metricAttributes[k] = attributes[k];
    return {
      side,
      kind: side === 'client' ? SpanKind.CLIENT : SpanKind.SERVER,
      name: v.name,
      start,
      end: addNs(start, view.durationNs),
      attributes,
      status: v.errorType !== undefined ? { code: SpanStatusCode.ERROR, ...(v.message ? { message: v.message } : {}) } : { code: SpanStatusCode.UNSET },
      resource: cachedProcessResource(proc, containerId, ctx),
      metric: { name: v.metric, durationS: view.durationNs / NS_PER_S, attributes: metricAttributes },
    };
  });
}
