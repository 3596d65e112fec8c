import type { Detection, ProtocolModule } from '../types';
import { mysqlDocumentFields } from './document';
import { createMysqlSession } from './session';
import type { MysqlData, MysqlSessionOptions } from './types';

/** The session's options (defaults live there) plus what only the document needs. */
export interface MysqlModuleOptions extends MysqlSessionOptions {
  /** Report the query text in `request`. */
  sendRequest?: boolean;
}

/** MySQL / MariaDB: sessions and document fields. */
export function createMysqlModule(options: MysqlModuleOptions = {}): ProtocolModule<MysqlData> {
  const { sendRequest = false, ...sessionOptions } = options;
  const docOptions = { sendRequest, sendResponse: sessionOptions.sendResponse ?? false };
  return {
    name: 'mysql',
    createSession: (sink) => createMysqlSession(sink, sessionOptions),
    documentFields: (views, server) => mysqlDocumentFields(views, server, docOptions),
    detect: detectMysql,
  };
}

/** Longest server version string accepted in a greeting. */
const MAX_VERSION = 80;

/**
 * The server speaks first in MySQL: its greeting is a HandshakeV10 packet
 * (sequence id 0, protocol byte 0x0a, a NUL-terminated printable version that
 * starts with a digit, a 4-byte connection id, 8 bytes of scramble and a NUL).
 */
export function detectMysql(client: Buffer, server: Buffer): Detection {
  if (server.length === 0) return client.length === 0 ? 'need-more' : 'no';
  const s = server;
  const have = s.length;
  if (have >= 4) {
    const len = s[0] | (s[1] << 8) | (s[2] << 16);
    // version (>= 2) + NUL + connection id + scramble + filler + capabilities
    if (len < 1 + 2 + 1 + 4 + 8 + 1 + 2 || len > 1024) return 'no';
    if (s[3] !== 0) return 'no';
  }
  if (have >= 5 && s[4] !== 0x0a) return 'no';
  if (have >= 6 && (s[5] < 0x30 || s[5] > 0x39)) return 'no';
  let nul = -1;
  for (let i = 5; i < Math.min(have, 5 + MAX_VERSION + 1); i++) {
    const c = s[i];
    if (c === 0) {
      nul = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return 'no';
  }
  if (nul < 0) return have >= 5 + MAX_VERSION + 1 ? 'no' : 'need-more';
  if (nul - 5 < 2) return 'no';
  const len = s[0] | (s[1] << 8) | (s[2] << 16);
  if (nul + 1 + 4 + 8 + 1 > 4 + len) return 'no';
  // the filler after the first 8 bytes of scramble
  const filler = nul + 1 + 4 + 8;
  if (have <= filler) return 'need-more';
  return s[filler] === 0 ? 'yes' : 'no';
}
