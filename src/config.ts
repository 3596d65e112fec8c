import * as fs from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { processorSchema } from './publish/processors';

export const DEFAULT_CONFIG_PATH = '/etc/packetbeat-ebpf/packetbeat-ebpf.yml';

/** Packetbeat's default ports. */
export const DEFAULT_PORTS = {
  http: [80, 8080, 8000, 5000, 8002],
  mysql: [3306, 3307],
  pgsql: [5432],
  redis: [6379],
} as const;

const PAYLOAD_LIMIT = 16384;

const port = z.number().int().min(1).max(65535);
const protocol = (ports: readonly number[]) =>
  z.strictObject({
    enabled: z.boolean().default(true),
    ports: z.array(port).min(1).default([...ports]),
  });

/** Raw request/response text in the documents (Packetbeat's send_request/send_response). */
const sendOptions = {
  send_request: z.boolean().default(false),
  send_response: z.boolean().default(false),
};

/** Result sets as CSV in `response`: at most max_rows rows of at most max_row_length bytes. */
const rowOptions = {
  max_rows: z.number().int().min(0).default(10),
  max_row_length: z.number().int().min(1).default(1024),
};

const http = protocol(DEFAULT_PORTS.http).extend({
  ...sendOptions,
  /** Authorization and Proxy-Authorization values become "*" (unlike Packetbeat, on by default). */
  redact_authorization: z.boolean().default(true),
  /** Other headers whose values become "*". */
  redact_headers: z.array(z.string()).default(['cookie', 'set-cookie']),
  /** Report all request/response headers (content-length/type are always reported). */
  send_all_headers: z.boolean().default(false),
  /** Report these headers too. */
  send_headers: z.array(z.string()).default([]),
  /** Cookie and Set-Cookie headers as objects of name → value. */
  split_cookie: z.boolean().default(false),
  /** Query/form parameters whose values are replaced by "xxxxx". */
  hide_keywords: z.array(z.string()).default([]),
  /** Report bodies of these content types (substrings, e.g. "json"), both directions... */
  include_body_for: z.array(z.string()).default([]),
  /** ...or per direction. */
  include_request_body_for: z.array(z.string()).default([]),
  include_response_body_for: z.array(z.string()).default([]),
  /** Most body bytes reported. */
  max_message_size: z.number().int().min(0).default(10 * 1024 * 1024),
  /** Header with the real client address (e.g. X-Forwarded-For) → network.forwarded_ip. */
  real_ip_header: z.string().optional(),
});

/** The `packet` capture mode (AF_PACKET socket filter). */
const packetMode = z.strictObject({
  /** Interfaces to capture on, by name; empty: every interface of the agent's network namespace. */
  interfaces: z.array(z.string().min(1).max(15)).max(64).default([]),
  /** Name the processes of local sockets from /proc (tables and fd links read per new connection). */
  process_attribution: z.boolean().default(true),
  /** Look for those sockets in every network namespace (through /proc/<pid>/net), not only the agent's. */
  all_namespaces: z.boolean().default(true),
});

export const configSchema = z.strictObject({
  /** How packets are captured: auto picks the best the kernel offers (see `check`). */
  mode: z.enum(['auto', 'syscall', 'kprobe', 'packet']).default('auto'),
  packet: packetMode.prefault({}),
  /** Bytes of payload head copied per syscall. */
  max_payload: z.number().int().min(64).max(PAYLOAD_LIMIT).default(4096),
  protocols: z
    .strictObject({
      http: http.prefault({}),
      mysql: protocol(DEFAULT_PORTS.mysql).extend({ ...sendOptions, ...rowOptions }).prefault({}),
      pgsql: protocol(DEFAULT_PORTS.pgsql).extend({ ...sendOptions, ...rowOptions }).prefault({}),
      redis: protocol(DEFAULT_PORTS.redis)
        .extend({
          ...sendOptions,
          queue_max_bytes: z.number().int().min(1).default(1024 * 1024),
          queue_max_messages: z.number().int().min(1).default(20_000),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Beats-style processors on every document (drop_event, drop_fields, include_fields). */
  processors: z.array(processorSchema).default([]),
  /** Added to every document's `tags`. */
  tags: z.array(z.string()).default([]),
  /** Recognise protocols by content on ports not configured for any (first bytes of each connection). */
  infer_protocols: z.boolean().default(true),
  /** Trace only these processes (empty: every process but the agent). */
  pids: z.array(z.number().int().positive()).max(1024).default([]),
  /** Requests without a response are reported as unmatched after this long. */
  transaction_timeout_ms: z.number().int().min(100).default(10_000),
  /** How long one end's view waits for the other end's view of the same transaction. */
  join_window_ms: z.number().int().min(0).max(60_000).default(500),
  /** Ring buffer size in bytes (a power of two, at least one page). */
  ring_buffer_bytes: z
    .number()
    .int()
    .min(4096)
    .refine((n) => (n & (n - 1)) === 0, 'must be a power of two')
    .default(16 * 1024 * 1024),
  /** Wake the agent when this many bytes wait in the ring buffer. */
  wakeup_bytes: z.number().int().min(0).default(256 * 1024),
  /** The agent drains the ring buffer every drain_min_interval_ms while events come, at least this often when idle. */
  drain_interval_ms: z.number().int().min(1).max(1000).default(20),
  /** Smaller: lower added latency for the traced applications; larger: less agent CPU under load. */
  drain_min_interval_ms: z.number().int().min(1).max(1000).default(1),
  /** Seconds between stats lines on stderr (0: only at exit). */
  stats_interval_s: z.number().min(0).default(30),
  output: z
    .strictObject({
      console: z.strictObject({ enabled: z.boolean().default(true), pretty: z.boolean().default(false) }).prefault({}),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ProtocolConfigName = keyof Config['protocols'];

export class ConfigError extends Error {}

/** Validate a plain object (from YAML and flags) into a Config, naming bad keys. */
export function validateConfig(raw: unknown, origin: string): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.flatMap((i) => {
      // zod reports unknown keys on their parent object: name each key's own path
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `  ${[...i.path, k].join('.')}: unknown key`);
      const where = i.path.length > 0 ? i.path.join('.') : '(top level)';
      return `  ${where}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration in ${origin}:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** Read and parse a YAML config file; a missing default file is an empty config. */
export function readConfigFile(file: string | undefined): { raw: unknown; origin: string } {
  const path = file ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    if (!file && (err as NodeJS.ErrnoException).code === 'ENOENT') return { raw: {}, origin: 'defaults' };
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${doc.errors[0].message}`);
  }
  return { raw: doc.toJS() ?? {}, origin: path };
}

/** `--ports http=8080,8081` → ['http', [8080, 8081]] */
export function parsePortsFlag(value: string): [ProtocolConfigName, number[]] {
  const m = /^(http|mysql|pgsql|redis)=(\d+(?:,\d+)*)$/.exec(value.trim());
  if (!m) throw new ConfigError(`--ports expects PROTO=PORT[,PORT...] with PROTO one of http, mysql, pgsql, redis; got "${value}"`);
  const ports = m[2].split(',').map(Number);
  for (const p of ports) if (p < 1 || p > 65535) throw new ConfigError(`--ports: ${p} is not a TCP port`);
  return [m[1] as ProtocolConfigName, ports];
}
