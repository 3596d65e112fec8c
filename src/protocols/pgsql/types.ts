/** What the PostgreSQL module decodes, per transaction. */

export interface PgsqlOptions {
  /** Put the query text in `request`. */
  sendRequest?: boolean;
  /** Put the result (CSV), command tag or error in `response`. */
  sendResponse?: boolean;
  /** Most result rows kept for `response`. */
  maxRows?: number;
  /** Most value bytes kept per row (Packetbeat's rule: values are cut, then CSV-quoted). */
  maxRowLength?: number;
  /** Most prepared statements remembered per connection. */
  maxStatements?: number;
  /** Most SQL bytes remembered for prepared statements per connection. */
  maxStatementBytes?: number;
  /** Most query bytes kept per message (longer text is cut). */
  maxQueryBytes?: number;
}

/** One statement the client ran. */
export interface PgsqlRequest {
  /** 'simple': from a Query message; 'extended': Parse/Bind/Execute; 'function': a FunctionCall. */
  protocol: 'simple' | 'extended' | 'function';
  /** Statement text, trimmed, without the trailing ';'; absent when the Parse was not seen. */
  query?: string;
  /** The text was cut (longer than kept, or bytes not captured). */
  truncated?: boolean;
  /** Extended protocol: the prepared statement's name ('' = unnamed) and the portal's. */
  statement?: string;
  portal?: string;
  /** Extended protocol: number of bound parameters (values are not reported). */
  params?: number;
  /** From the connection's StartupMessage, when it was seen. */
  user?: string;
  database?: string;
  application?: string;
}

export interface PgsqlError {
  /** Non-localized severity ('V') when sent, else 'S' (ERROR, FATAL, PANIC). */
  severity?: string;
  /** SQLSTATE, e.g. "42P01". */
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
}

/** What the server answered. */
export interface PgsqlResponse {
  /** Columns of the result (RowDescription), when there was one. */
  numFields?: number;
  /** Column names (kept only for `response`). */
  fieldNames?: string[];
  /** DataRow messages (COPY TO: CopyData messages). */
  numRows: number;
  /** The first rows as text, each cut to maxRowLength value bytes (kept only for `response`). */
  rows?: string[][];
  /** CommandComplete tag, e.g. "INSERT 0 1", "SELECT 15". */
  tag?: string;
  /** Row count from the tag (INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH, COPY). */
  rowsAffected?: number;
  /** EmptyQueryResponse. */
  empty?: boolean;
  /** PortalSuspended: the Execute's row limit was reached. */
  suspended?: boolean;
  /** A COPY ran: 'in' (FROM STDIN), 'out' (TO STDOUT), 'both' (replication). */
  copy?: 'in' | 'out' | 'both';
  error?: PgsqlError;
}

export interface PgsqlData {
  request?: PgsqlRequest;
  response?: PgsqlResponse;
}
