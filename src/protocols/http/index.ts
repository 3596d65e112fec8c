import type { Config } from '../../config';
import type { ProtocolModule } from '../types';
import { httpDocumentFields } from './document';
import { createHttpSession, type HttpData } from './session';

/** HTTP/1.x: sessions and document fields, configured from `protocols.http`. */
export function createHttpModule(config: Config['protocols']['http']): ProtocolModule<HttpData> {
  const docOptions = {
    redactHeaders: new Set(config.redact_headers.map((h) => h.toLowerCase())),
    sendAllHeaders: config.send_all_headers,
  };
  return {
    name: 'http',
    createSession: (sink) => createHttpSession(sink),
    documentFields: (views, server) => httpDocumentFields(views, server, docOptions),
  };
}
