import * as path from 'node:path';
import type { DocumentFields, ProtocolTransaction, ServerEndpoint } from '../types';
import type { HttpData } from './session';
import type { HttpMessageBase } from './types';

export interface HttpDocumentOptions {
  /** Header names (lower-case) whose values are never exported. */
  redactHeaders: ReadonlySet<string>;
  /** Report every header (content-length and content-type always are). */
  sendAllHeaders: boolean;
}

function header(m: HttpMessageBase | undefined, name: string): string | undefined {
  if (!m) return undefined;
  for (const [k, v] of m.headers) if (k === name) return v;
  return undefined;
}

function headersDoc(m: HttpMessageBase, ctx: HttpDocumentOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of m.headers) {
    if (!ctx.sendAllHeaders && k !== 'content-length' && k !== 'content-type') continue;
    const value = ctx.redactHeaders.has(k) ? '*' : v;
    const prev = out[k];
    out[k] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/** Split Host into domain and port ("[::1]:8080", "example.com:8080", "example.com"). */
function splitHost(host: string): { domain: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim());
  if (!m) return { domain: host };
  return { domain: m[1].replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : undefined };
}

function urlFields(target: string, host: string | undefined, serverIp: string, serverPort: number): Record<string, unknown> {
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
  if (q >= 0) url.query = pathAndQuery.slice(q + 1);
  const ext = path.posix.extname(p);
  if (ext.length > 1) url.extension = ext.slice(1);
  const hp = authority ? splitHost(authority) : { domain: serverIp.includes(':') ? `[${serverIp}]` : serverIp, port: serverPort };
  url.domain = hp.domain;
  if (hp.port !== undefined && hp.port !== 80) url.port = hp.port;
  const auth = hp.domain.includes(':') && !hp.domain.startsWith('[') ? `[${hp.domain}]` : hp.domain;
  url.full = `${scheme}://${auth}${hp.port !== undefined && hp.port !== 80 ? `:${hp.port}` : ''}${pathAndQuery}`;
  return url;
}

/** HTTP fields of a transaction, from whichever views it has. */
export function httpDocumentFields(
  views: Array<ProtocolTransaction<HttpData>>,
  server: ServerEndpoint,
  ctx: HttpDocumentOptions,
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
  if (request) {
    http.version = request.version;
    const host = header(request, 'host');
    const url = urlFields(request.target, host, server.ip, server.port);
    fields.url = url;
    if (host) domain = url.domain as string;
    root.method = request.method;
    root.query = `${request.method} ${url.path as string}`;
    const req: Record<string, unknown> = {
      method: request.method,
      bytes: requestBytes,
      body: { bytes: request.contentLength },
    };
    const h = headersDoc(request, ctx);
    if (Object.keys(h).length > 0) req.headers = h;
    const ctype = header(request, 'content-type');
    if (ctype) req.mime_type = ctype.split(';')[0].trim();
    const referrer = header(request, 'referer');
    if (referrer) req.referrer = referrer;
    http.request = req;
    const ua = header(request, 'user-agent');
    if (ua) fields.user_agent = { original: ua };
  }
  if (response) {
    http.version ??= response.version;
    const res: Record<string, unknown> = {
      status_code: response.statusCode,
      status_phrase: response.statusPhrase.toLowerCase(),
      bytes: responseBytes,
      body: { bytes: response.contentLength },
    };
    const h = headersDoc(response, ctx);
    if (Object.keys(h).length > 0) res.headers = h;
    const ctype = header(response, 'content-type');
    if (ctype) res.mime_type = ctype.split(';')[0].trim();
    http.response = res;
  }
  const failed = !request || !response || response.statusCode >= 400;
  return {
    // status: Error when unmatched or >= 400 (Packetbeat's rule)
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
