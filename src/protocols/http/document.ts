/**
 * HTTP document fields, as Packetbeat writes them: method, query ("METHOD
 * /path"), http.{version,request,response}.*, url.*, user_agent.original,
 * destination.domain, user.name (Basic auth, unless redacted), related.*,
 * network.forwarded_ip, and the raw `request`/`response` text on request.
 */
import * as path from 'node:path';
import type { DocumentFields, ProtocolTransaction, ServerEndpoint } from '../types';
import { parseForm, encodeForm } from './form';
import { sniffMimeType } from './mime';
import type { HttpData } from './session';
import type { HttpMessage, HttpMessageBase } from './types';

export interface HttpDocumentOptions {
  /** Authorization and Proxy-Authorization values become "*" (and no user.name). */
  redactAuthorization: boolean;
  /** Other header names (lower-case) whose values become "*". */
  redactHeaders: ReadonlySet<string>;
  /** Report every header; otherwise `sendHeaders` plus content-length and content-type. */
  sendAllHeaders: boolean;
  sendHeaders: ReadonlySet<string>;
  /** Cookie / Set-Cookie as objects of name → value. */
  splitCookie: boolean;
  /** Raw request / response text (head, plus the body when its type is included). */
  sendRequest: boolean;
  sendResponse: boolean;
  /** Query and form parameters whose values become "xxxxx". */
  hideKeywords: ReadonlySet<string>;
  /** Content types (substrings) whose bodies are reported, per direction. */
  includeRequestBodyFor: readonly string[];
  includeResponseBodyFor: readonly string[];
  /** Most body bytes reported. */
  maxMessageSize: number;
  /** Header carrying the real client IP (first address is reported). */
  realIpHeader?: string;
}

const AUTH_HEADERS = new Set(['authorization', 'proxy-authorization']);
const HIDDEN = 'xxxxx';

function header(m: HttpMessageBase | undefined, name: string): string | undefined {
  if (!m) return undefined;
  for (const [k, v] of m.headers) if (k === name) return v;
  return undefined;
}

function redacted(name: string, o: HttpDocumentOptions): boolean {
  return (o.redactAuthorization && AUTH_HEADERS.has(name)) || o.redactHeaders.has(name);
}

function cookieObject(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values) {
    // name=value pairs; a Set-Cookie's attributes (expires, path...) are pairs too, as Packetbeat splits them
    for (const part of value.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
    }
  }
  return out;
}

function headersDoc(m: HttpMessage, o: HttpDocumentOptions): Record<string, unknown> {
  const grouped = new Map<string, string[]>();
  for (const [k, v] of m.headers) {
    if (!o.sendAllHeaders && !o.sendHeaders.has(k) && k !== 'content-type') continue;
    const list = grouped.get(k);
    if (list) list.push(v);
    else grouped.set(k, [v]);
  }
  // content-length is always reported: the body's real length (as Packetbeat does)
  const out: Record<string, unknown> = { 'content-length': m.contentLength };
  for (const [k, values] of grouped) {
    if (k === 'content-length') continue;
    if (redacted(k, o)) out[k] = '*';
    else if (o.splitCookie && (k === 'cookie' || k === 'set-cookie')) out[k] = cookieObject(values);
    else out[k] = values.join(', ');
  }
  return out;
}

const MAX_PORT = 65535;

/** Split Host into domain and port ("[::1]:8080", "example.com:8080", "example.com"); a port past 65535 is no port. */
function splitHost(host: string): { domain: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim());
  if (!m) return { domain: host };
  const port = m[2] ? Number(m[2]) : undefined;
  if (port !== undefined && port > MAX_PORT) return { domain: host.trim() };
  return { domain: m[1].replace(/^\[|\]$/g, ''), port };
}

function isForm(m: HttpMessageBase): boolean {
  return (header(m, 'content-type') ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
}

/** Query parameters (and a form body's), hidden keywords masked, re-encoded sorted (as Go's url.Values). */
function queryString(query: string | undefined, request: HttpMessageBase, o: HttpDocumentOptions): string | undefined {
  const params = query !== undefined ? parseForm(query) : [];
  if (request.body.length > 0 && isForm(request)) params.push(...parseForm(request.body.toString('utf8')));
  if (query === undefined && params.length === 0) return undefined;
  for (const p of params) if (o.hideKeywords.has(p[0].toLowerCase())) p[1] = HIDDEN;
  return encodeForm(params);
}

/** Raw target with hidden keywords masked. */
function hideInTarget(target: string, o: HttpDocumentOptions): string {
  if (o.hideKeywords.size === 0) return target;
  const q = target.indexOf('?');
  if (q < 0) return target;
  return `${target.slice(0, q + 1)}${hideInPairs(target.slice(q + 1), o)}`;
}

function hideInPairs(text: string, o: HttpDocumentOptions): string {
  return text.replace(/(^|[&;])([^=&;]*)=([^&;]*)/g, (m, sep: string, key: string) =>
    o.hideKeywords.has(decodeURIComponentSafe(key).toLowerCase()) ? `${sep}${key}=${HIDDEN}` : m,
  );
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function urlFields(target: string, host: string | undefined, server: ServerEndpoint, query: string | undefined): Record<string, unknown> {
  const url: Record<string, unknown> = {};
  let pathAndQuery = target;
  let scheme = 'http';
  let authority = host;
  const abs = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(target);
  if (abs) {
    scheme = abs[1].toLowerCase();
    authority = abs[2];
    pathAndQuery = abs[3] || '/';
  }
  const q = pathAndQuery.indexOf('?');
  const p = q >= 0 ? pathAndQuery.slice(0, q) : pathAndQuery;
  url.scheme = scheme;
  url.path = p;
  if (query !== undefined) url.query = query;
  const ext = path.posix.extname(p);
  if (ext.length > 1) url.extension = ext.slice(1);
  const hp = authority ? splitHost(authority) : { domain: server.ip, port: server.port };
  url.domain = hp.domain;
  if (hp.port !== undefined && hp.port !== 80) url.port = hp.port;
  const auth = hp.domain.includes(':') ? `[${hp.domain}]` : hp.domain;
  const portPart = hp.port !== undefined && hp.port !== 80 ? `:${hp.port}` : '';
  url.full = `${scheme}://${auth}${portPart}${p}${q >= 0 ? `?${query ?? pathAndQuery.slice(q + 1)}` : ''}`;
  return url;
}

function includesBody(m: HttpMessageBase, types: readonly string[]): boolean {
  if (types.length === 0) return false;
  // every Content-Type a message carries counts (some servers send two)
  return m.headers.some(([k, v]) => k === 'content-type' && types.some((t) => v.toLowerCase().includes(t.toLowerCase())));
}

/** How many body bytes the parser must keep for a message, given the options. */
export function bodyBytesWanted(m: HttpMessage, o: HttpDocumentOptions, defaultBytes: number): number {
  const types = m.kind === 'request' ? o.includeRequestBodyFor : o.includeResponseBodyFor;
  if (includesBody(m, types)) return o.maxMessageSize;
  if (m.kind === 'request' && isForm(m)) return Math.min(o.maxMessageSize, 64 * 1024); // form parameters → url.query
  return defaultBytes;
}

/** The raw head with secrets removed: Authorization values and hidden keywords. */
function rawHead(m: HttpMessage, o: HttpDocumentOptions): string {
  let head = m.head;
  if (o.redactAuthorization || o.redactHeaders.size > 0) {
    head = head.replace(/^([A-Za-z0-9!#$%&'*+.^_`|~-]+):[ \t]*([^\r\n]*)/gm, (line, name: string) =>
      redacted(name.toLowerCase(), o) ? `${name}:*` : line,
    );
  }
  if (m.kind === 'request' && o.hideKeywords.size > 0) {
    const sp1 = head.indexOf(' ');
    const sp2 = head.indexOf(' ', sp1 + 1);
    if (sp1 > 0 && sp2 > sp1) head = `${head.slice(0, sp1 + 1)}${hideInTarget(head.slice(sp1 + 1, sp2), o)}${head.slice(sp2)}`;
  }
  return head;
}

function bodyText(m: HttpMessageBase, o: HttpDocumentOptions, request: boolean): string {
  const text = m.body.subarray(0, o.maxMessageSize).toString('utf8');
  return request && isForm(m) && o.hideKeywords.size > 0 ? hideInPairs(text, o) : text;
}

function basicAuthUser(m: HttpMessageBase): string | undefined {
  const auth = header(m, 'authorization');
  const match = auth && /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}

function forwardedIp(m: HttpMessageBase, name: string): string | undefined {
  const v = header(m, name.toLowerCase());
  const first = v?.split(',')[0]?.trim();
  return first || undefined;
}

/** HTTP fields of a transaction, from whichever views it has. */
export function httpDocumentFields(
  views: Array<ProtocolTransaction<HttpData>>,
  server: ServerEndpoint,
  o: HttpDocumentOptions,
): DocumentFields {
  // both views saw the same bytes; take each message from the first view that has it
  const request = views.find((v) => v.data.request)?.data.request;
  const response = views.find((v) => v.data.response)?.data.response;
  const http: Record<string, unknown> = {};
  const root: Record<string, unknown> = {};
  const fields: Record<string, unknown> = { http };
  let domain: string | undefined;
  const requestBytes = request ? request.headerBytes + request.bodyBytes : 0;
  const responseBytes = response ? response.headerBytes + response.bodyBytes : 0;
  const related: Record<string, unknown> = {};
  if (request) {
    http.version = request.version;
    const host = header(request, 'host');
    const q = request.target.indexOf('?');
    const query = queryString(q >= 0 ? request.target.slice(q + 1) : undefined, request, o);
    const url = urlFields(request.target, host, server, query);
    fields.url = url;
    if (host) {
      domain = url.domain as string;
      related.hosts = [domain];
    }
    root.method = request.method;
    root.query = `${request.method} ${url.path as string}`;
    const req: Record<string, unknown> = { method: request.method, bytes: requestBytes };
    if (request.contentLength > 0 || request.bodyBytes > 0) req.body = { bytes: request.contentLength };
    if (includesBody(request, o.includeRequestBodyFor) && request.body.length > 0) {
      req.body = { ...((req.body as object) ?? {}), content: bodyText(request, o, true) };
    }
    req.headers = headersDoc(request, o);
    const mime = sniffMimeType(request.body);
    if (mime) req.mime_type = mime;
    const referrer = header(request, 'referer');
    if (referrer) req.referrer = referrer;
    http.request = req;
    const ua = header(request, 'user-agent');
    if (ua) fields.user_agent = { original: ua };
    const user = o.redactAuthorization ? undefined : basicAuthUser(request);
    if (user) {
      fields.user = { name: user };
      related.user = [user];
    }
    if (o.realIpHeader) {
      const ip = forwardedIp(request, o.realIpHeader);
      if (ip) fields.network = { forwarded_ip: ip };
    }
    if (o.sendRequest) {
      const withBody = includesBody(request, o.includeRequestBodyFor) && request.body.length > 0;
      root.request = rawHead(request, o) + (withBody ? bodyText(request, o, true) : '');
    }
  }
  if (response) {
    http.version ??= response.version;
    const res: Record<string, unknown> = {
      status_code: response.statusCode,
      status_phrase: response.statusPhrase.toLowerCase(),
      bytes: responseBytes,
    };
    if (response.contentLength > 0 || response.bodyBytes > 0) res.body = { bytes: response.contentLength };
    if (includesBody(response, o.includeResponseBodyFor) && response.body.length > 0) {
      res.body = { ...((res.body as object) ?? {}), content: bodyText(response, o, false) };
    }
    res.headers = headersDoc(response, o);
    const mime = sniffMimeType(response.body);
    if (mime) res.mime_type = mime;
    http.response = res;
    if (o.sendResponse) {
      const withBody = includesBody(response, o.includeResponseBodyFor) && response.body.length > 0;
      root.response = rawHead(response, o) + (withBody ? bodyText(response, o, false) : '');
    }
  }
  if (Object.keys(related).length > 0) fields.related = related;
  // status: Error when unmatched or >= 400 (Packetbeat's rule)
  const failed = !request || !response || response.statusCode >= 400;
  return {
    status: failed ? 'Error' : 'OK',
    matched: request !== undefined && response !== undefined,
    outcome: !response ? 'unknown' : failed ? 'failure' : 'success',
    requestBytes,
    responseBytes,
    domain,
    root,
    fields,
  };
}
