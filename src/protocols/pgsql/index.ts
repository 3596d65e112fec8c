import type { Detection, ProtocolModule } from '../types';
import { pgsqlDocumentFields } from './document';
import { CODE_CANCEL, CODE_GSSENC, CODE_SSL } from './framer';
import { createPgsqlSession } from './session';
import type { PgsqlData, PgsqlOptions } from './types';

export type { PgsqlData, PgsqlOptions } from './types';

/** PostgreSQL (frontend/backend protocol 3): sessions, document fields and content detection. */
export function createPgsqlModule(options: PgsqlOptions = {}): ProtocolModule<PgsqlData> {
  // the session owns the defaults of its limits
  const { sendRequest = false, ...sessionOptions } = options;
  const docOptions = { sendRequest, sendResponse: sessionOptions.sendResponse ?? false };
  return {
    name: 'pgsql',
    createSession: (sink) => createPgsqlSession(sink, sessionOptions),
    documentFields: (views, server) => pgsqlDocumentFields(views, server, docOptions),
    detect: detectPgsql,
  };
}

const MAX_STARTUP = 10000;

/**
 * The client's first packet: StartupMessage (int32 length, int32 196608 for
 * protocol 3.0 — 3.2 too — then NUL-terminated name/value pairs ending in a
 * NUL), SSLRequest, GSSENCRequest (length 8) or CancelRequest (length 16+).
 * The server never speaks first.
 */
export function detectPgsql(client: Buffer, server: Buffer): Detection {
  if (client.length === 0) return server.length > 0 ? 'no' : 'need-more';
  // every startup packet is shorter than 2^24 bytes: the first byte is 0
  if (client[0] !== 0) return 'no';
  if (client.length < 8) return client.length >= 2 && client[1] !== 0 ? 'no' : 'need-more';
  const len = client.readUInt32BE(0);
  const code = client.readUInt32BE(4);
  if (code === CODE_SSL || code === CODE_GSSENC) return len === 8 ? 'yes' : 'no';
  if (code === CODE_CANCEL) return len >= 16 && len <= 16 + 256 ? 'yes' : 'no';
  if (code >>> 16 !== 3 || (code & 0xffff) > 2) return 'no';
  // StartupMessage: at least "user\0x\0" + the final NUL
  if (len < 8 + 8 || len > MAX_STARTUP) return 'no';
  if (client.length < len) return 'need-more';
  if (client[len - 1] !== 0) return 'no';
  const user = client.indexOf('user\0', 8, 'latin1');
  return user >= 0 && user < len ? 'yes' : 'no';
}
