/**
 * Redis document fields (Packetbeat's names and values):
 *
 * - `method`: the command upper-cased, with the subcommand of container
 *   commands ("GET", "CONFIG GET", "CLIENT SETNAME", "XINFO STREAM").
 * - `resource`: the first argument after the method (usually the key).
 * - `query`: the command line as sent, space-joined ("set key3 me"); long
 *   arguments and long commands are cut (ending in "...").
 * - `status`: Error on an error reply ('-' or RESP3 '!') or when unmatched
 *   (a command sent under CLIENT REPLY OFF/SKIP expects no reply: OK).
 * - `redis.return_value`: a short rendering of the reply: "OK", "me", "42",
 *   "nil", "[a, b, [c]]", "{k: v}" (RESP3 maps), "true"; cut to the configured
 *   length with "...". A multi-channel (UN)SUBSCRIBE lists its confirmations.
 * - `redis.error`: the error reply's text ("ERR unknown command ...").
 * - `request` / `response`: the query / the return value or error, only with
 *   sendRequest / sendResponse (as Packetbeat).
 * - `db.system`: "redis".
 * - `action` (returned beside the fields, for `event.action`):
 *   "redis.<method lower-cased>", e.g. "redis.get", "redis.config get".
 */
import type { DocumentFields, ProtocolTransaction, ServerEndpoint } from '../types';
import type { RedisData } from './session';

export interface RedisDocumentOptions {
  sendRequest: boolean;
  sendResponse: boolean;
}

/** Kept as a name for the module's own code; `action` is part of DocumentFields. */
export type RedisDocumentFields = DocumentFields;

export function redisDocumentFields(
  views: Array<ProtocolTransaction<RedisData>>,
  _server: ServerEndpoint,
  options: RedisDocumentOptions,
): RedisDocumentFields {
  // both views saw the same bytes; take each message from the first view that has it
  const request = views.find((v) => v.data.request)?.data.request;
  const response = views.find((v) => v.data.response)?.data.response;
  const root: Record<string, unknown> = {};
  const redis: Record<string, unknown> = {};
  const fields: Record<string, unknown> = { db: { system: 'redis' } };
  let action: string | undefined;
  if (request) {
    if (request.method) {
      root.method = request.method;
      action = `redis.${request.method.toLowerCase()}`;
    }
    if (request.resource !== undefined) root.resource = request.resource;
    root.query = request.query;
    if (options.sendRequest) root.request = request.query;
  }
  if (response) {
    if (response.isError) redis.error = response.value;
    else redis.return_value = response.value;
    if (options.sendResponse) root.response = response.value;
  }
  if (Object.keys(redis).length > 0) fields.redis = redis;
  // a command sent under CLIENT REPLY OFF / SKIP is complete without a reply
  const answered = response !== undefined || request?.noReply === true;
  const failed = !request || !answered || response?.isError === true;
  return {
    status: failed ? 'Error' : 'OK',
    outcome: !response ? 'unknown' : response.isError ? 'failure' : 'success',
    matched: request !== undefined && answered,
    requestBytes: request?.bytes ?? 0,
    responseBytes: response?.bytes ?? 0,
    root,
    fields,
    action,
  };
}
