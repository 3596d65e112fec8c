/** Decoded MySQL messages, as the transaction layer and the documents need them. */

interface MessageBase {
  /** Kernel timestamps (ns) of the events carrying the first and the last byte. */
  startNs: number;
  endNs: number;
  /** Bytes on the wire (packet headers included, uncaptured bytes included). */
  bytes: number;
  /** Offset of the first byte in its direction's stream. */
  streamOffset: number;
  /** e.g. "Packet loss while capturing the request" */
  notes: string[];
}

export interface MysqlRequest extends MessageBase {
  /** Command byte (COM_QUERY = 3, ...). */
  command: number;
  /** "QUERY", "STMT_EXECUTE", ... */
  commandName: string;
  /** First word of the SQL upper-cased ("SELECT"), or the command ("PING", "PREPARE", "USE"). */
  method: string;
  /** The SQL (trimmed), or a description for commands without SQL ("COM_PING"). */
  query: string;
  /** The query is SQL (not a description of a command). */
  isSql: boolean;
  /** The query text is cut (longer than maxQueryBytes, or bytes were not captured). */
  truncated?: boolean;
  /** COM_STMT_*: the statement id. */
  statementId?: number;
  /** COM_STMT_EXECUTE: bound parameters, decoded where simple. */
  params?: string[];
  /** COM_INIT_DB / COM_CHANGE_USER: the schema asked for. */
  schema?: string;
  /** COM_CHANGE_USER: the user asked for. */
  user?: string;
}

export type MysqlResponseKind = 'ok' | 'error' | 'eof' | 'resultset' | 'prepare' | 'other';

export interface MysqlResponse extends MessageBase {
  kind: MysqlResponseKind;
  /** From the (last) OK packet. */
  affectedRows: number;
  insertId: number;
  /** Columns of the first result set. */
  numFields: number;
  /** Rows of all result sets. */
  numRows: number;
  /** Result sets (SERVER_MORE_RESULTS_EXISTS). */
  numResults: number;
  errorCode?: number;
  sqlState?: string;
  errorMessage?: string;
  /** "db.table" of the columns, in order of appearance. */
  tables: string[];
  /** Column names of the first result set (only kept with sendResponse). */
  fields?: string[];
  /** Up to maxRows rows of the first result set, cells cut to maxRowLength (only kept with sendResponse). */
  rows?: string[][];
  /** COM_STMT_PREPARE: the statement id and its parameter count. */
  statementId?: number;
  numParams?: number;
  warnings: number;
  /** The end of the response was not seen: it is reported as far as it went. */
  incomplete?: boolean;
}

/** One exchange, with the connection's state when the command was sent. */
export interface MysqlData {
  request?: MysqlRequest;
  response?: MysqlResponse;
  /** Login user (handshake or COM_CHANGE_USER). */
  user?: string;
  /** Default schema when the command was sent (handshake, COM_INIT_DB, USE, session tracking). */
  database?: string;
  serverVersion?: string;
  /** The connection uses the compressed protocol: only framing and timing are known. */
  compressed?: boolean;
}

export interface MysqlSessionOptions {
  /** Keep column names and rows for the `response` text. */
  sendResponse?: boolean;
  maxRows?: number;
  maxRowLength?: number;
  /** Longest query text kept (bytes). */
  maxQueryBytes?: number;
  /** Prepared statements remembered per connection. */
  maxStatements?: number;
  /** Commands waiting for their response per connection. */
  maxPending?: number;
  /** Report COM_PING exchanges as transactions. */
  reportPings?: boolean;
}
