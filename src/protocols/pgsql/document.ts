/**
 * PostgreSQL document fields (Packetbeat's names, plus ECS/OpenTelemetry db.*):
 *
 * - `method`: the statement's first keyword, upper-cased (SELECT, INSERT, WITH, ...).
 * - `query`: the statement text, trimmed, without its trailing ';' (one per statement
 *   of a multi-statement simple query; for the extended protocol the SQL of the Parse).
 * - `request`: the query text (only with send_request).
 * - `response` (only with send_response): a result set as CSV — the column names, then
 *   at most max_rows rows whose values add up to at most max_row_length bytes (the last
 *   value cut, the rest left out), quoted like Go's encoding/csv, newlines in values as
 *   "\n"; without a result set, the command tag ("INSERT 0 1") or the error.
 * - `pgsql.num_rows` (DataRow messages; CopyData for COPY TO), `pgsql.num_fields`,
 *   `pgsql.rows_affected` (from the command tag: INSERT/UPDATE/DELETE/MERGE/SELECT/
 *   MOVE/FETCH/COPY n), `pgsql.error_code` (SQLSTATE), `pgsql.error_message`,
 *   `pgsql.error_severity`.
 * - `db.system` "postgresql", `db.name`, `db.user`, `db.statement` (= query);
 *   `user.name` and `related.user` (the login role, from the StartupMessage).
 * - `status` Error on an ErrorResponse or without an answer; request/response bytes per
 *   Packetbeat: the client's messages, and the server's without ReadyForQuery,
 *   ParseComplete and BindComplete.
 */
import type { DocumentFields, ProtocolTransaction, ServerEndpoint } from '../types';
import { firstKeyword } from './sql';
import type { PgsqlData, PgsqlResponse } from './types';

export interface PgsqlDocumentOptions {
  sendRequest: boolean;
  sendResponse: boolean;
}

/** One CSV field, quoted when Go's encoding/csv would quote it. */
function csvField(value: string): string {
  const v = value.includes('\n') || value.includes('\r') ? value.replace(/\n/g, '\\n').replace(/\r/g, '\\r') : value;
  if (v === '') return v;
  const needsQuotes = v === '\\.' || v.includes(',') || v.includes('"') || /^\s/u.test(v);
  return needsQuotes ? `"${v.replace(/"/g, '""')}"` : v;
}

function csvLine(values: readonly string[]): string {
  return values.map(csvField).join(',') + '\n';
}

/** `response` text: the result as CSV, else the command tag or the error. */
export function responseText(r: PgsqlResponse): string {
  if (r.error) {
    const e = r.error;
    return `${e.severity ?? 'ERROR'}${e.code ? ` ${e.code}` : ''}: ${e.message ?? ''}`;
  }
  if (r.fieldNames !== undefined || (r.rows !== undefined && r.rows.length > 0)) {
    let out = r.fieldNames && r.fieldNames.length > 0 ? csvLine(r.fieldNames) : '';
    for (const row of r.rows ?? []) out += csvLine(row);
    return out;
  }
  return r.tag ?? '';
}

/** PostgreSQL fields of a transaction, from whichever views it has. */
export function pgsqlDocumentFields(
  views: Array<ProtocolTransaction<PgsqlData>>,
  _server: ServerEndpoint,
  ctx: PgsqlDocumentOptions,
): DocumentFields {
  // both views saw the same bytes; take each message from the first view that has it
  const reqView = views.find((v) => v.data.request);
  const resView = views.find((v) => v.data.response);
  const request = reqView?.data.request;
  const response = resView?.data.response;
  const root: Record<string, unknown> = {};
  const pgsql: Record<string, unknown> = {};
  const db: Record<string, unknown> = { system: 'postgresql' };
  const fields: Record<string, unknown> = { pgsql, db };

  if (request) {
    if (request.query !== undefined) {
      const method = firstKeyword(request.query);
      if (method) root.method = method;
      root.query = request.query;
      db.statement = request.query;
      if (ctx.sendRequest) root.request = request.query;
    }
    if (request.database !== undefined) db.name = request.database;
    if (request.user !== undefined) {
      db.user = request.user;
      fields.user = { name: request.user };
      fields.related = { user: [request.user] };
    }
  }
  if (response) {
    pgsql.num_rows = response.numRows;
    pgsql.num_fields = response.numFields ?? 0;
    if (response.rowsAffected !== undefined) pgsql.rows_affected = response.rowsAffected;
    if (response.error) {
      if (response.error.code !== undefined) pgsql.error_code = response.error.code;
      if (response.error.message !== undefined) pgsql.error_message = response.error.message;
      if (response.error.severity !== undefined) pgsql.error_severity = response.error.severity;
    }
    if (ctx.sendResponse) root.response = responseText(response);
  }
  const failed = !request || !response || response.error !== undefined;
  return {
    status: failed ? 'Error' : 'OK',
    matched: request !== undefined && response !== undefined,
    outcome: !response ? 'unknown' : response.error ? 'failure' : 'success',
    requestBytes: reqView?.request?.bytes ?? 0,
    responseBytes: resView?.response?.bytes ?? 0,
    root,
    fields,
  };
}
