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

/** Where `setup` imports the dashboards, and with what (the cluster's credentials when unset). */
const dashboardsTarget = z.strictObject({
  host: z.string().min(1),
  api_key: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  /** Kibana space to import into (Kibana only). */
  space: z.string().min(1).optional(),
  ssl: z
    .strictObject({
      certificate_authorities: z.array(z.string()).default([]),
      verification_mode: z.enum(['full', 'none']).default('full'),
    })
    .prefault({}),
});

/** Durations as Elasticsearch/OpenSearch write them: 30d, 12h, 90m, 3600s. */
const duration = z.string().regex(/^\d+(d|h|m|s)$/, 'a number and d, h, m or s (e.g. 30d)');

/** What `packetbeat-ebpf setup` installs besides the index template. */
const setup = z.strictObject({
  kibana: dashboardsTarget.optional(),
  opensearch_dashboards: dashboardsTarget.optional(),
  /** The lifecycle policy (ILM on Elasticsearch, ISM on OpenSearch). */
  lifecycle: z
    .strictObject({
      rollover_age: duration.default('30d'),
      rollover_size: z.string().regex(/^\d+(b|kb|mb|gb|tb)$/, 'a number and b, kb, mb, gb or tb (e.g. 50gb)').default('50gb'),
      /** Delete backing indices this long after their rollover (unset: keep them). */
      delete_after: duration.optional(),
    })
    .prefault({}),
});

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

/**
 * drain_min_interval_ms when the configuration leaves it out: 5 ms for the kernel
 * hooks under SCHED_IDLE (sched_idle auto or true), whose larger batches do not
 * delay the traced applications; 1 ms at normal priority (sched_idle: false), where
 * each drain preempts them (HTTP p99 at the fixed rate, medians of 5 rounds: 488 µs
 * with 1 ms, 601 µs with 5 ms), and for the packet mode, which names a connection's
 * processes from /proc when it reads its packets (a client that exits soon after
 * is then still there).
 */
export function drainMinIntervalMs(config: Config, capture: 'kernel' | 'packet'): number {
  if (config.drain_min_interval_ms !== undefined) return config.drain_min_interval_ms;
  return capture === 'kernel' && config.sched_idle !== false ? 5 : 1;
}

/**
 * drain_interval_ms when the configuration leaves it out: 50 ms for the kernel
 * hooks, whose events carry what names their processes (an idle agent's timer wakes
 * 20 times a second, not 50: its main thread 6.6–7.1 → 4.6–5.2 ms/s of CPU on this
 * VM, where each wake-up costs ~65 µs; data left waiting that long is no
 * starvation to sched_idle auto, whose limit is 100 ms); 20 ms for the packet
 * mode, which names a connection's processes from /proc when it reads its packets.
 */
export function drainIntervalMs(config: Config, capture: 'kernel' | 'packet'): number {
  if (config.drain_interval_ms !== undefined) return config.drain_interval_ms;
  return capture === 'kernel' ? 50 : 20;
}

/** Where a backend output keeps batches it could not deliver yet (one directory per output). */
export const DEFAULT_SPOOL_ROOT = '/var/lib/packetbeat-ebpf/spool';

/** "host:9200" or "https://host:9200" → a URL with http or https. */
const hostUrl = z.string().transform((value, ctx) => {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a URL` });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `"${value}": only http and https are supported` });
    return z.NEVER;
  }
  return withScheme.replace(/\/+$/, '');
});

/** The settings Elasticsearch and OpenSearch outputs share (batching, retry, spool). */
const backendOutput = {
  enabled: z.boolean().default(true),
  /** Nodes of one cluster; requests go round-robin, a failing node is skipped. */
  hosts: z.array(hostUrl).min(1),
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  /** Index or data stream; %{[field]} takes the document's value (default: one data stream per protocol). */
  index: z.string().min(1).default('packetbeat-ebpf-%{[network.protocol]}'),
  ssl: z
    .strictObject({
      /** PEM files of the CAs that sign the cluster's certificates. */
      certificate_authorities: z.array(z.string().min(1)).default([]),
      /** none: accept any certificate (tests only). */
      verification_mode: z.enum(['full', 'none']).default('full'),
    })
    .prefault({}),
  /** Documents per bulk request. */
  bulk_max_size: z.number().int().min(1).max(100_000).default(1600),
  /** Bytes per bulk request (the backend's http.max_content_length is 100 MiB by default). */
  bulk_max_bytes: z.number().int().min(1024).max(100 * 1024 * 1024).default(5 * 1024 * 1024),
  /** A batch leaves at most this long after its first document. */
  flush_interval_ms: z.number().int().min(1).max(60_000).default(1000),
  /** Per request. */
  timeout_ms: z.number().int().min(100).default(30_000),
  /** Retries after a failed request wait init_ms, doubling up to max_ms (with jitter). */
  backoff: z
    .strictObject({ init_ms: z.number().int().min(1).default(1000), max_ms: z.number().int().min(1).default(60_000) })
    .prefault({})
    .refine((b) => b.max_ms >= b.init_ms, 'max_ms must be at least init_ms'),
  /** Documents held in memory (bytes of JSON) before batches go to the spool. */
  queue: z.strictObject({ max_bytes: z.number().int().min(64 * 1024).default(64 * 1024 * 1024) }).prefault({}),
  /** Batches the backend could not take yet, on disk; sent in order when it is back (and at the next start). */
  spool: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Default: DEFAULT_SPOOL_ROOT/<output name>. */
      dir: z.string().min(1).optional(),
      max_bytes: z.number().int().min(1024 * 1024).default(1024 * 1024 * 1024),
    })
    .prefault({}),
};

const withCredentials = <T extends { username?: string; password?: string }>(o: T) => o.password === undefined || o.username !== undefined;
const CREDENTIALS_MESSAGE = 'password needs username';

const elasticsearchOutput = z
  .strictObject({
    ...backendOutput,
    /** Elasticsearch API key: the base64 "id:api_key" form Kibana shows as "encoded". */
    api_key: z.string().min(1).optional(),
  })
  .refine(withCredentials, { message: CREDENTIALS_MESSAGE, path: ['password'] })
  .refine((o) => !(o.api_key && o.username), { message: 'use api_key or username/password, not both', path: ['api_key'] });

const opensearchOutput = z.strictObject(backendOutput).refine(withCredentials, { message: CREDENTIALS_MESSAGE, path: ['password'] });

export type ElasticsearchOutputConfig = z.infer<typeof elasticsearchOutput>;
export type OpenSearchOutputConfig = z.infer<typeof opensearchOutput>;

/** Encodings and transports of output.otlp. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;

const httpUrl = z.string().refine((v) => {
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

/** Spans and duration histograms over OTLP, one Resource per process (see src/outputs/otlp). */
const otlpOutput = z.strictObject({
  enabled: z.boolean().default(false),
  /** Base URL (http adds /v1/traces, /v1/metrics); default http://localhost:4318, grpc http://localhost:4317. */
  endpoint: httpUrl.optional(),
  protocol: z.enum(OTLP_PROTOCOLS).default('http/protobuf'),
  /** Sent with every export (HTTP headers or gRPC metadata), e.g. authorization. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Bound of one export attempt (the HTTP exporters' retries included); failed gRPC exports are retried as long again. */
  timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
  batch_size: z.number().int().min(1).max(65_536).default(512),
  batch_delay_ms: z.number().int().min(1).max(60_000).default(1_000),
  /** Spans waiting for the exporter at most (the capture pauses at half; past it spans are dropped and counted). */
  queue_size: z.number().int().min(1).max(1_048_576).default(8_192),
  metrics_interval_ms: z.number().int().min(100).max(3_600_000).default(60_000),
  /** Processes with their own Resource at once (least recently used retired first). */
  max_processes: z.number().int().min(1).max(65_536).default(256),
  /** A process without transactions this long is retired, its last metrics exported. */
  process_idle_s: z.number().min(1).default(300),
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
  /**
   * Capture mode: auto picks the best that attaches (kprobe mode with fentry,
   * then with kprobes, then syscall tracepoints; the packet mode when none attaches).
   */
  mode: z.enum(['auto', 'syscall', 'kprobe', 'packet']).default('auto'),
  /** The kprobe mode's hooks: fentry/fexit, kprobe/kretprobe, or the best that attaches. */
  kprobe_variant: z.enum(['auto', 'fentry', 'kprobe']).default('auto'),
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
  /**
   * The agent drains the ring buffer every drain_min_interval_ms while events come,
   * at least this often when idle, and, with the kernel hooks, while events only
   * trickle in (under 1,600 a second) as often as ~32 of them come, up to this
   * (addon/ring-drain.h). Default: see drainIntervalMs.
   */
  drain_interval_ms: z.number().int().min(1).max(1000).optional(),
  /**
   * Larger: less agent CPU (fewer wake-ups, each for more events). Under SCHED_IDLE
   * (sched_idle: auto, the default) the traced applications' tail latency does not
   * grow with it up to 5 ms: measured 2026-12-07, 5 rather than 1 gave 19% less CPU
   * and a lower wrk p99 at ~6,700 HTTP requests/s (5 paired rounds); 10 raised p99.
   * Longer, measured that night: 20 rather than 5 at ~6,000 HTTP requests/s
   * (bench/live-ab, two runs of 10 alternating pairs) gave ×0.847 and ×0.864 of the
   * CPU for wrk's p99 ×1.066 and ×1.031, but PostgreSQL at 2,000 tps (bench/pgsql
   * --agent-args, 3 rounds each) no less CPU (0.458 → 0.444 CPU-s per 10k) and a
   * higher p99 (agent / floor 1.233 → 1.785); 10 rather than 5, HTTP CPU ×1.072 and
   * p99 ×1.162; 40 rather than 20, CPU ×0.958 and p99 ×1.10. Paired the next day
   * (live-ab --load pgsql, pgbench -S -R 2000, 10 pairs, three runs), 20 rather than 5
   * gave PostgreSQL ×0.661, ×0.717 and ×0.728 of the CPU for a p99 ×1.18 [0.94, 1.45],
   * ×1.06 [0.97, 1.16] and ×1.27 [1.08, 1.44]. So 5 stays the default: under
   * SCHED_IDLE the agent's CPU is CPU nobody else wanted, the latency is the traced
   * applications'. 20 is for hosts that trade some tail latency for agent CPU.
   * Default: see drainMinIntervalMs.
   */
  drain_min_interval_ms: z.number().int().min(1).max(1000).optional(),
  /**
   * The agent's CPU priority (nice, -20..19). Above 0 it cedes the CPU to the traced
   * applications when the host is saturated: what it cannot drain then is dropped by
   * the kernel and counted (ringbufDrops), the applications keep their speed.
   */
  nice: z.number().int().min(-20).max(19).default(0),
  /**
   * true: run the agent under SCHED_IDLE once it captures: it gets only CPU that no
   * other task wants and never preempts one, so the traced applications' latency
   * grows less and a saturated host's applications keep the capture floor's speed;
   * what the agent cannot drain then is dropped by the kernel and counted. (nice has
   * no effect then.)
   * auto (the default): SCHED_IDLE while the agent keeps up, normal priority while
   * the ring buffer holds an eighth of its size or more or data has waited 100 ms
   * unread (watched every 10 ms by a thread of the agent's that stays at normal
   * priority), idle again once it stayed
   * under 1/64 for 5 s: the lower latency below saturation, complete data through
   * bursts above it. The time at normal priority has a budget (sched_boost_cpu,
   * sched_boost_burst_s): a host saturated for longer gets its CPU back, and what the
   * agent cannot drain then is dropped by the kernel and counted.
   * false: normal priority throughout (then `nice` applies).
   */
  sched_idle: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /**
   * sched_idle auto's budget for normal priority, in the agent's CPU time: it refills
   * at this share of one CPU (0.1: over time the agent takes at most a tenth of a CPU
   * from the applications at normal priority, and spends at most a tenth of the time
   * there behind: a second at normal priority while its ring buffer holds more than
   * 1/64 costs a CPU-second at least, whatever CPU the agent got; 1 or more: no limit
   * in practice)...
   */
  sched_boost_cpu: z.number().gt(0).max(64).default(0.1),
  /**
   * ...and holds up to this many CPU-seconds (at most as many seconds at normal
   * priority): a burst of load is drained at normal priority until they are spent.
   * Spent, the agent stays under SCHED_IDLE until it has caught up by itself (the
   * saturation is over: a host that stays saturated keeps its CPU) and a quarter is back.
   */
  sched_boost_burst_s: z.number().gt(0).max(3600).default(2),
  /** Seconds between stats lines on stderr (0: only at exit). */
  stats_interval_s: z.number().min(0).default(30),
  setup: setup.prefault({}),
  output: z
    .strictObject({
      console: z.strictObject({ enabled: z.boolean().default(true), pretty: z.boolean().default(false) }).prefault({}),
      elasticsearch: elasticsearchOutput.optional(),
      opensearch: opensearchOutput.optional(),
      otlp: otlpOutput.prefault({}),
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
