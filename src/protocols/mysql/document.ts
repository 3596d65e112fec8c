/**
 * MySQL transaction documents, with Packetbeat's field names:
 *
 * - root `method`: first word of the SQL upper-cased ("SELECT"), or the command
 *   ("PREPARE", "USE" for COM_INIT_DB, "PING", "STMT_RESET", "EXECUTE" when the
 *   statement is unknown, ...);
 * - root `query`: the SQL trimmed of whitespace and CR/LF; for COM_STMT_EXECUTE
 *   the prepared SQL ("Request Execute Statement" with the note "The actual query
 *   being used is unknown" when the PREPARE was not seen); for COM_STMT_PREPARE the
 *   SQL too (Packetbeat puts "Request Prepare Statement" there); "USE db" for
 *   COM_INIT_DB; "COM_<NAME>" for the other commands;
 * - root `path`: "db.table" of the result's columns, comma-separated ("test.test");
 * - root `params`: the bound values of a COM_STMT_EXECUTE, as text;
 * - root `request` (sendRequest): the query; `response` (sendResponse): the first
 *   result set as CSV (header line of column names, then at most maxRows rows,
 *   each cut to maxRowLength characters of cell text), as Packetbeat writes it;
 * - `mysql.affected_rows`, `mysql.insert_id`, `mysql.num_rows`, `mysql.num_fields`
 *   when a response was seen; `mysql.error_code`, `mysql.error_message`
 *   ("<SQLSTATE>: <message>") on an ERR packet; `mysql.compressed` when the
 *   connection uses the compressed protocol (nothing of it is decoded);
 * - `db.system` "mysql", `db.name` (default schema; the new one for USE),
 *   `db.user` (login user), `db.statement` (the SQL, when it is SQL);
 * - status `Error` on an ERR packet or when request or response is missing;
 * - source.bytes: the command packet(s); destination.bytes: every packet of the
 *   response; packet headers included.
 */
import type { DocumentFields, ProtocolTransaction, ServerEndpoint } from '../types';
import type { MysqlData } from './types';

export interface MysqlDocumentOptions {
  sendRequest: boolean;
  sendResponse: boolean;
}

/** A CSV field as Go's encoding/csv writes it (Packetbeat's DumpInCSVFormat). */
function csvField(f: string): string {
  if (f === '') return f;
  const needsQuotes = f === '\\.' || /[",\r\n]/.test(f) || /^\s/u.test(f);
  return needsQuotes ? `"${f.replace(/"/g, '""')}"` : f;
}

/** Column names and rows as CSV lines; newlines inside values escaped as \n and \r. */
export function csvText(fields: readonly string[], rows: readonly string[][]): string {
  const lines: string[] = [];
  if (fields.length > 0) lines.push(fields.map((f) => csvField(f.replace(/\n/g, '\\n'))).join(','));
  for (const row of rows) lines.push(row.map((c) => csvField(c.replace(/\n/g, '\\n').replace(/\r/g, '\\r'))).join(','));
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

export function mysqlDocumentFields(
  views: Array<ProtocolTransaction<MysqlData>>,
  _server: ServerEndpoint,
  options: MysqlDocumentOptions,
): DocumentFields {
  const reqView = views.find((v) => v.data.request);
  const respView = views.find((v) => v.data.response);
  const request = reqView?.data.request;
  const response = respView?.data.response;
  const data = reqView?.data ?? respView?.data ?? views[0]?.data ?? {};
  const compressed = views.some((v) => v.data.compressed);
  const root: Record<string, unknown> = {};
  const mysql: Record<string, unknown> = {};
  const db: Record<string, unknown> = { system: 'mysql' };
  const fields: Record<string, unknown> = { mysql, db };

  if (request && !compressed) {
    root.method = request.method;
    root.query = request.query;
    if (request.params && request.params.length > 0) root.params = request.params;
    if (options.sendRequest) root.request = request.query;
    if (request.isSql) db.statement = request.query;
  }
  const dbName = request?.schema ?? data.database;
  if (dbName) db.name = dbName;
  const user = request?.commandName === 'CHANGE_USER' && request.user ? request.user : data.user;
  if (user) db.user = user;

  if (response && !compressed) {
    mysql.affected_rows = response.affectedRows;
    mysql.insert_id = response.insertId;
    mysql.num_rows = response.numRows;
    mysql.num_fields = response.numFields;
    if (response.kind === 'error') {
      mysql.error_code = response.errorCode;
      mysql.error_message = response.sqlState ? `${response.sqlState}: ${response.errorMessage ?? ''}` : (response.errorMessage ?? '');
    }
    if (response.tables.length > 0) root.path = response.tables.join(', ');
    if (options.sendResponse && response.fields && response.rows) {
      const text = csvText(response.fields, response.rows);
      if (text) root.response = text;
    }
  }
  if (compressed) mysql.compressed = true;

  const matched = request !== undefined && response !== undefined;
  const failed = response?.kind === 'error';
  return {
    status: failed || !matched ? 'Error' : 'OK',
    outcome: !response ? 'unknown' : failed ? 'failure' : 'success',
    matched,
    requestBytes: request?.bytes ?? 0,
    responseBytes: response?.bytes ?? 0,
    root,
    fields,
  };
}
