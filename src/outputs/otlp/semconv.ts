/**
 * OpenTelemetry semantic-convention names the OTLP output writes that are
 * still incubating in @opentelemetry/semantic-conventions 1.45.0 (the stable
 * ones are imported from the package where they are used), plus the few names
 * of our own. Copied as constants so an incubating rename is one edit here.
 */

// resource: process (incubating)
export const ATTR_PROCESS_PID = 'process.pid';
export const ATTR_PROCESS_PARENT_PID = 'process.parent_pid';
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
export const ATTR_PROCESS_EXECUTABLE_PATH = 'process.executable.path';
export const ATTR_PROCESS_COMMAND = 'process.command';
export const ATTR_PROCESS_COMMAND_LINE = 'process.command_line';
export const ATTR_PROCESS_COMMAND_ARGS = 'process.command_args';
export const ATTR_PROCESS_OWNER = 'process.owner';
export const ATTR_PROCESS_USER_ID = 'process.user.id';
export const ATTR_PROCESS_CREATION_TIME = 'process.creation.time';
export const ATTR_PROCESS_WORKING_DIRECTORY = 'process.working_directory';

// resource: host (incubating)
export const ATTR_HOST_NAME = 'host.name';
export const ATTR_HOST_ARCH = 'host.arch';

// spans: sizes and rows (incubating)
export const ATTR_HTTP_REQUEST_SIZE = 'http.request.size';
export const ATTR_HTTP_RESPONSE_SIZE = 'http.response.size';
export const ATTR_HTTP_REQUEST_BODY_SIZE = 'http.request.body.size';
export const ATTR_HTTP_RESPONSE_BODY_SIZE = 'http.response.body.size';
export const ATTR_DB_RESPONSE_RETURNED_ROWS = 'db.response.returned_rows';

/** db.system.name of Redis (incubating; postgresql and mysql are stable). */
export const DB_SYSTEM_NAME_VALUE_REDIS = 'redis';

/** error.type of a request that never got its response (timeout, connection closed, loss). */
export const ERROR_TYPE_NO_RESPONSE = 'no_response';
/** error.type of a response whose request was not seen. */
export const ERROR_TYPE_NO_REQUEST = 'no_request';

/**
 * Duration of operations as a database server saw them. Semantic conventions
 * define database metrics for clients only; this one is ours (own namespace).
 */
export const METRIC_DB_SERVER_OPERATION_DURATION = 'packetbeat_ebpf.db.server.operation.duration';

/** Bucket boundaries (s) the conventions advise for HTTP and database durations. */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
export const DB_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
