/** MySQL/MariaDB client/server protocol constants (protocol 4.1, handshake v10). */

/** Capability flags (HandshakeV10 / HandshakeResponse41). */
export const CAP = {
  /** MariaDB: set by MySQL peers; clear means MariaDB's extended capabilities are exchanged. */
  CLIENT_MYSQL: 0x00000001,
  CONNECT_WITH_DB: 0x00000008,
  COMPRESS: 0x00000020,
  LOCAL_FILES: 0x00000080,
  PROTOCOL_41: 0x00000200,
  SSL: 0x00000800,
  SECURE_CONNECTION: 0x00008000,
  MULTI_STATEMENTS: 0x00010000,
  MULTI_RESULTS: 0x00020000,
  PLUGIN_AUTH: 0x00080000,
  CONNECT_ATTRS: 0x00100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x00200000,
  SESSION_TRACK: 0x00800000,
  DEPRECATE_EOF: 0x01000000,
  OPTIONAL_RESULTSET_METADATA: 0x02000000,
  ZSTD_COMPRESSION: 0x04000000,
  QUERY_ATTRIBUTES: 0x08000000,
} as const;

/** MariaDB extended capabilities (HandshakeV10 reserved bytes / HandshakeResponse41 filler). */
export const MARIADB_CAP = {
  PROGRESS: 1 << 0,
  COM_MULTI: 1 << 1,
  STMT_BULK_OPERATIONS: 1 << 2,
  EXTENDED_METADATA: 1 << 3,
  CACHE_METADATA: 1 << 4,
} as const;

/** Server status flags (OK / EOF packets). */
export const STATUS = {
  MORE_RESULTS_EXISTS: 0x0008,
  CURSOR_EXISTS: 0x0040,
  SESSION_STATE_CHANGED: 0x4000,
} as const;

/** Command bytes (first payload byte of a sequence-0 client packet). */
export const COM = {
  SLEEP: 0x00,
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  CREATE_DB: 0x05,
  DROP_DB: 0x06,
  REFRESH: 0x07,
  SHUTDOWN: 0x08,
  STATISTICS: 0x09,
  PROCESS_INFO: 0x0a,
  CONNECT: 0x0b,
  PROCESS_KILL: 0x0c,
  DEBUG: 0x0d,
  PING: 0x0e,
  TIME: 0x0f,
  DELAYED_INSERT: 0x10,
  CHANGE_USER: 0x11,
  BINLOG_DUMP: 0x12,
  TABLE_DUMP: 0x13,
  CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  DAEMON: 0x1d,
  BINLOG_DUMP_GTID: 0x1e,
  RESET_CONNECTION: 0x1f,
  CLONE: 0x20,
  /** MariaDB */
  STMT_BULK_EXECUTE: 0xfa,
} as const;

const COMMAND_NAMES: Record<number, string> = {};
for (const [name, code] of Object.entries(COM)) COMMAND_NAMES[code] = name;

/** "QUERY", "STMT_EXECUTE", ... or undefined for bytes that are no command. */
export function commandName(code: number): string | undefined {
  return COMMAND_NAMES[code];
}

/** Column / parameter types of the binary protocol. */
export const TYPE = {
  DECIMAL: 0x00,
  TINY: 0x01,
  SHORT: 0x02,
  LONG: 0x03,
  FLOAT: 0x04,
  DOUBLE: 0x05,
  NULL: 0x06,
  TIMESTAMP: 0x07,
  LONGLONG: 0x08,
  INT24: 0x09,
  DATE: 0x0a,
  TIME: 0x0b,
  DATETIME: 0x0c,
  YEAR: 0x0d,
  NEWDATE: 0x0e,
  VARCHAR: 0x0f,
  BIT: 0x10,
  TIMESTAMP2: 0x11,
  DATETIME2: 0x12,
  TIME2: 0x13,
  JSON: 0xf5,
  NEWDECIMAL: 0xf6,
  ENUM: 0xf7,
  SET: 0xf8,
  TINY_BLOB: 0xf9,
  MEDIUM_BLOB: 0xfa,
  LONG_BLOB: 0xfb,
  BLOB: 0xfc,
  VAR_STRING: 0xfd,
  STRING: 0xfe,
  GEOMETRY: 0xff,
} as const;

/** Column flag: the integer is unsigned. */
export const UNSIGNED_FLAG = 0x0020;

/** A physical packet of this payload length is continued by the next one. */
export const MAX_PACKET = 0xffffff;
