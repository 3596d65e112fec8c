import type { Config } from '../../config';
import type { Detection, ProtocolModule } from '../types';
import { bodyBytesWanted, httpDocumentFields, type HttpDocumentOptions } from './document';
import { httpFieldJson } from './json';
import { createHttpSession, type HttpData } from './session';
import type { HttpMessage } from './types';

/** HTTP/1.x: sessions and document fields, configured from `protocols.http`. */
export function createHttpModule(config: Config['protocols']['http']): ProtocolModule<HttpData> {
  const lower = (list: string[]) => list.map((h) => h.toLowerCase());
  const docOptions: HttpDocumentOptions = {
    redactAuthorization: config.redact_authorization,
    redactHeaders: new Set(lower(config.redact_headers)),
    sendAllHeaders: config.send_all_headers,
    sendHeaders: new Set(lower(config.send_headers)),
    splitCookie: config.split_cookie,
    sendRequest: config.send_request,
    sendResponse: config.send_response,
    hideKeywords: new Set(lower(config.hide_keywords)),
    includeRequestBodyFor: [...config.include_body_for, ...config.include_request_body_for],
    includeResponseBodyFor: [...config.include_body_for, ...config.include_response_body_for],
    maxMessageSize: config.max_message_size,
    realIpHeader: config.real_ip_header,
  };
  const parserOptions = { bodyLimit: (m: HttpMessage) => bodyBytesWanted(m, docOptions, 0) };
  return {
    name: 'http',
    createSession: (sink) => createHttpSession(sink, parserOptions),
    documentFields: (views, server) => httpDocumentFields(views, server, docOptions),
    fieldJson: httpFieldJson,
    detect: detectHttp,
  };
}

const REQUEST_LINE = /^[A-Z][A-Z_-]{0,19} [!-~]+ HTTP\/1\.[01]\r?$/;
const METHOD_PREFIX = /^[A-Z][A-Z_-]{0,19}( |$)/;

/** An HTTP/1.x request line from the client, or a status line from the server. */
export function detectHttp(client: Buffer, server: Buffer): Detection {
  if (server.length > 0 && client.length === 0) {
    // servers do not speak first in HTTP
    return 'no';
  }
  const nl = client.indexOf(0x0a);
  const line = client.toString('latin1', 0, nl >= 0 ? nl : Math.min(client.length, 2048));
  if (nl >= 0) return REQUEST_LINE.test(line) ? 'yes' : 'no';
  if (client.length >= 2048) return 'no';
  return METHOD_PREFIX.test(line.slice(0, 21)) || /^[A-Z]{0,20}$/.test(line) ? 'need-more' : 'no';
}
