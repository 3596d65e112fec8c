/**
 * The JSON text of the `http` and `url` objects httpDocumentFields builds,
 * their keys in its order: the same text as JSON.stringify, written with the
 * shape known (no key lookups, fewer strings joined). Strings from the traffic
 * are escaped as needed; objects whose keys come from the traffic (headers,
 * bodies) go to the generic writer. test/unit/protocols/http/json.test.ts holds
 * this to JSON.stringify's output for every capture's documents and hostile text.
 */
import { jsonNumber, jsonString, jsonValue } from '../../publish/json';

type Fields = Record<string, unknown>;

/** http.* and url.* as httpDocumentFields made them; undefined for other keys. */
export function httpFieldJson(key: string, value: unknown): string | undefined {
  if (key === 'http') return httpJson(value as Fields);
  if (key === 'url') return urlJson(value as Fields);
  return undefined;
}

function httpJson(h: Fields): string {
  // version, request, response (http.version is set first, or with the response alone)
  let out = h.version === undefined ? '{' : '{"version":' + jsonString(h.version as string);
  if (h.request !== undefined) out += (out.length === 1 ? '"request":' : ',"request":') + requestJson(h.request as Fields);
  if (h.response !== undefined) out += (out.length === 1 ? '"response":' : ',"response":') + responseJson(h.response as Fields);
  return out + '}';
}

function requestJson(r: Fields): string {
  const out = '{"method":' + jsonString(r.method as string) + ',"bytes":' + jsonNumber(r.bytes as number) + messageTail(r);
  return (r.referrer === undefined ? out : out + ',"referrer":' + jsonString(r.referrer as string)) + '}';
}

function responseJson(r: Fields): string {
  return '{"status_code":' + jsonNumber(r.status_code as number) + ',"status_phrase":' + jsonString(r.status_phrase as string) + ',"bytes":' + jsonNumber(r.bytes as number) + messageTail(r) + '}';
}

/** What a request and a response both end with: body?, headers, mime_type? */
function messageTail(r: Fields): string {
  let out = r.body === undefined ? '' : ',"body":' + bodyJson(r.body as Fields);
  out += ',"headers":' + jsonValue(r.headers);
  return r.mime_type === undefined ? out : out + ',"mime_type":' + jsonString(r.mime_type as string);
}

/** {bytes} alone (the usual body); with content, the generic writer. */
function bodyJson(b: Fields): string {
  return b.content === undefined && b.bytes !== undefined ? '{"bytes":' + jsonNumber(b.bytes as number) + '}' : (jsonValue(b) as string);
}

function urlJson(u: Fields): string {
  // scheme, path, query?, extension?, domain, port?, full (urlFields' order)
  let out = '{"scheme":' + jsonString(u.scheme as string) + ',"path":' + jsonString(u.path as string);
  if (u.query !== undefined) out += ',"query":' + jsonString(u.query as string);
  if (u.extension !== undefined) out += ',"extension":' + jsonString(u.extension as string);
  out += ',"domain":' + jsonString(u.domain as string);
  if (u.port !== undefined) out += ',"port":' + jsonNumber(u.port as number);
  return out + ',"full":' + jsonString(u.full as string) + '}';
}
