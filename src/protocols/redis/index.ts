import type { Detection, ProtocolModule } from '../types';
import { MAX_COMMAND_LENGTH, REDIS_COMMANDS } from './commands';
import { redisDocumentFields } from './document';
import { createRedisSession, type RedisData } from './session';

export type { RedisData, RedisRequest, RedisResponse } from './session';

export interface RedisModuleOptions {
  /** Put the query in `request` (Packetbeat's send_request). */
  sendRequest?: boolean;
  /** Put the return value / error in `response` (Packetbeat's send_response). */
  sendResponse?: boolean;
  /** Characters of query and of return value kept (longer ones end in "..."). */
  maxTextLength?: number;
  /** Packetbeat's queue_max_bytes: bound on the queued requests' kept text. */
  queueMaxBytes?: number;
  /** Packetbeat's queue_max_messages: bound on the queued requests. */
  queueMaxMessages?: number;
}

/** Redis (RESP2/RESP3, inline commands): sessions and document fields. */
export function createRedisModule(options: RedisModuleOptions = {}): ProtocolModule<RedisData> {
  // the session owns the defaults of its limits
  const { sendRequest = false, sendResponse = false, ...sessionOptions } = options;
  const docOptions = { sendRequest, sendResponse };
  return {
    name: 'redis',
    createSession: (sink) => createRedisSession(sink, sessionOptions),
    documentFields: (views, server) => redisDocumentFields(views, server, docOptions),
    detect: detectRedis,
  };
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** "*<count>\r\n$": a RESP request array's start. */
function detectArray(b: Buffer): Detection {
  let i = 1;
  while (i < b.length && isDigit(b[i])) {
    if (i > 8) return 'no';
    i++;
  }
  if (i === b.length) return 'need-more';
  if (i === 1 || (i === 2 && b[1] === 0x30)) return 'no'; // no digits, or "*0"
  const rest = [CR, LF, 0x24];
  for (let k = 0; k < rest.length; k++, i++) {
    if (i === b.length) return 'need-more';
    if (b[i] !== rest[k]) return 'no';
  }
  return 'yes';
}

/** A RESP reply's first line: a type byte, then text up to CRLF. */
function looksLikeReply(b: Buffer): Detection {
  const c = b[0];
  if (c === undefined) return 'need-more';
  if (!'+-:$*_#,(!=%~|>'.includes(String.fromCharCode(c))) return 'no';
  const nl = b.indexOf(LF);
  if (nl < 0) return b.length < 512 ? 'need-more' : 'no';
  return nl >= 2 && b[nl - 1] === CR ? 'yes' : 'no';
}

/**
 * A RESP request array ("*3\r\n$3\r\nSET..."), or an inline command line
 * starting with a known command ("PING\r\n", "set a b\r\n") answered with a
 * RESP reply (inline words alone would also match memcached or HTTP).
 */
export function detectRedis(client: Buffer, server: Buffer): Detection {
  if (client.length === 0) return server.length > 0 ? 'no' : 'need-more'; // Redis servers never speak first
  if (client[0] === 0x2a) return detectArray(client);
  let i = 0;
  while (i < client.length && i <= MAX_COMMAND_LENGTH) {
    const c = client[i] as number;
    if (c === SP || c === CR || c === LF) break;
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (i > 0 && (c === 0x5f || c === 0x2d));
    if (!letter) return 'no';
    i++;
  }
  if (i === 0 || i > MAX_COMMAND_LENGTH) return 'no';
  if (i === client.length) return 'need-more';
  if (!REDIS_COMMANDS.has(client.toString('latin1', 0, i).toUpperCase())) return 'no';
  const nl = client.indexOf(LF);
  if (nl < 0) return client.length < 4096 ? 'need-more' : 'no';
  if (/ HTTP\/\d\.\d\r?$/.test(client.toString('latin1', 0, nl))) return 'no';
  return looksLikeReply(server);
}
