import { Command, InvalidArgumentError } from 'commander';
import { checkKernel, ensureTracefs, formatCheck } from '../agent/check';
import { replayCapture, ReplayError } from '../agent/replay';
import { startAgent } from '../agent/run';
import { closeOutputs, createOutputs } from '../outputs';
import { OutputConfigError } from '../outputs/backend';
import { SpoolError } from '../outputs/delivery/spool';
import { CaptureStartError } from '../capture/ebpf-source';
import { ConfigError, parsePortsFlag, readConfigFile, validateConfig, type Config } from '../config';
import { AGENT_VERSION } from '../publish/document';
import { createLogger } from '../util/logger';
import { registerSetupCommand } from './setup-command';

interface RunFlags {
  config?: string;
  ports?: string[];
  maxPayload?: number;
  pid?: number[];
  statsInterval?: number;
  nice?: number;
  schedIdle?: boolean | string;
  record?: string;
  mode?: string;
  kprobeVariant?: string;
  es?: string[];
  opensearch?: string[];
  /** false with --no-console */
  console?: boolean;
  otlp?: string;
  otlpProtocol?: string;
  otlpHeader?: string[];
}

/** How long `replay` waits for outputs to deliver before spooling what is left. */
const REPLAY_FLUSH_MS = 10 * 60_000;

/** `--es URL` / `--opensearch URL`: the output's hosts, its other settings from the file. */
function withHosts(output: Record<string, unknown>, key: string, hosts: string[] | undefined): void {
  if (!hosts || hosts.length === 0) return;
  const current = output[key];
  output[key] = { ...(typeof current === 'object' && current !== null ? current : {}), hosts };
}

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a whole number`);
    return Number(v);
  };
}

function secondsArg(name: string) {
  return (v: string): number => {
    if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidArgumentError(`${name} must be a number of seconds (e.g. 30 or 0.5)`);
    return Number(v);
  };
}

function niceArg(v: string): number {
  if (!/^-?\d+$/.test(v) || Number(v) < -20 || Number(v) > 19) throw new InvalidArgumentError('--nice must be a whole number from -20 to 19');
  return Number(v);
}

function collect<T>(parse: (v: string) => T) {
  return (v: string, prev: T[] | undefined): T[] => [...(prev ?? []), parse(v)];
}

/** Config file, then flags on top; validated once, naming the bad key. */
export function loadConfig(flags: RunFlags): Config {
  const { raw, origin } = readConfigFile(flags.config);
  const merged = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : raw) as Record<string, unknown>;
  if (typeof merged !== 'object' || merged === null || Array.isArray(merged)) {
    throw new ConfigError(`invalid configuration in ${origin}: the top level must be a mapping`);
  }
  if (flags.maxPayload !== undefined) merged.max_payload = flags.maxPayload;
  if (flags.statsInterval !== undefined) merged.stats_interval_s = flags.statsInterval;
  if (flags.nice !== undefined) merged.nice = flags.nice;
  if (flags.schedIdle !== undefined) {
    if (flags.schedIdle !== true && flags.schedIdle !== 'auto' && flags.schedIdle !== 'off') {
      throw new ConfigError(`--sched-idle takes no value, "auto" or "off", got ${JSON.stringify(flags.schedIdle)}`);
    }
    merged.sched_idle = flags.schedIdle === 'off' ? false : flags.schedIdle;
  }
  if (flags.pid && flags.pid.length > 0) merged.pids = flags.pid;
  if (flags.mode !== undefined) merged.mode = flags.mode;
  if (flags.kprobeVariant !== undefined) merged.kprobe_variant = flags.kprobeVariant;
  if (flags.es || flags.opensearch || flags.console === false) {
    const current = merged.output;
    const output: Record<string, unknown> = { ...(typeof current === 'object' && current !== null ? (current as Record<string, unknown>) : {}) };
    withHosts(output, 'elasticsearch', flags.es);
    withHosts(output, 'opensearch', flags.opensearch);
    if (flags.console === false) output.console = { ...((output.console as object | undefined) ?? {}), enabled: false };
    merged.output = output;
  }
  if (flags.otlp !== undefined || flags.otlpProtocol !== undefined || (flags.otlpHeader?.length ?? 0) > 0) {
    const output = { ...((merged.output as Record<string, unknown>) ?? {}) };
    const otlp: Record<string, unknown> = { ...((output.otlp as Record<string, unknown>) ?? {}), enabled: true };
    if (flags.otlp !== undefined) otlp.endpoint = flags.otlp;
    if (flags.otlpProtocol !== undefined) otlp.protocol = flags.otlpProtocol;
    for (const h of flags.otlpHeader ?? []) {
      const eq = h.indexOf('=');
      if (eq <= 0) throw new ConfigError(`--otlp-header expects NAME=VALUE; got "${h}"`);
      otlp.headers = { ...((otlp.headers as Record<string, string>) ?? {}), [h.slice(0, eq).trim()]: h.slice(eq + 1) };
    }
    output.otlp = otlp;
    merged.output = output;
  }
  if (flags.ports && flags.ports.length > 0) {
    const protocols = { ...((merged.protocols as Record<string, Record<string, unknown>>) ?? {}) };
    for (const spec of flags.ports) {
      const [name, ports] = parsePortsFlag(spec);
      protocols[name] = { ...(protocols[name] ?? {}), ports };
    }
    merged.protocols = protocols;
  }
  const otlpFlags = flags.otlp !== undefined || flags.otlpProtocol !== undefined || (flags.otlpHeader?.length ?? 0) > 0;
  const withFlags = flags.ports || flags.maxPayload !== undefined || flags.nice !== undefined || flags.schedIdle !== undefined || flags.es || flags.opensearch || flags.console === false || flags.mode || flags.kprobeVariant || otlpFlags;
  return validateConfig(merged, withFlags ? `${origin} and flags` : origin);
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('packetbeat-ebpf')
    .description('Application transactions (HTTP, PostgreSQL, MySQL, Redis) from inside the kernel with eBPF, each attributed to its process')
    .version(AGENT_VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run', { isDefault: true })
    .description('capture transactions and print them as NDJSON on stdout (logs and stats on stderr)')
    .option('-c, --config <file>', 'YAML config file (default /etc/packetbeat-ebpf/packetbeat-ebpf.yml when present)')
    .option('--ports <proto=port,...>', 'ports of a protocol, replacing its defaults (repeatable), e.g. http=8080,8081', collect(String))
    .option('--mode <mode>', 'capture mode: auto (default: the best that attaches), syscall, kprobe, or packet (AF_PACKET: traffic of other hosts and namespaces)')
    .option('--max-payload <bytes>', 'bytes of payload head copied per syscall (64-16384)', intArg('--max-payload'))
    .option('--pid <pid>', 'trace only this process (repeatable)', collect(intArg('--pid')))
    .option('--stats-interval <seconds>', 'seconds between stats lines on stderr, fractions allowed (0: only at exit)', secondsArg('--stats-interval'))
    .option('--nice <n>', "the agent's CPU priority, -20..19 (above 0: it yields to the traced applications on a saturated host; what it cannot keep up with is dropped and counted)", niceArg)
    .option(
      '--sched-idle [auto|off]',
      'run the agent under SCHED_IDLE once it captures (sched_idle: true): only on CPU nobody else wants; on a saturated host the applications keep their speed and what the agent cannot keep up with is dropped and counted. "auto" (the default): under SCHED_IDLE while it keeps up, at normal priority while its ring buffer fills, within a budget (sched_boost_cpu, sched_boost_burst_s: a tenth of a CPU, bursts of 2 CPU-seconds). "off": normal priority throughout',
    )
    .option('--record <file>', 'also write the raw kernel events to FILE (for tests and bug reports)')
    .option('--kprobe-variant <variant>', 'hooks of the kprobe mode: auto, fentry, kprobe')
    .option('--es <url>', 'also ship to this Elasticsearch node (repeatable; output.elasticsearch.hosts)', collect(String))
    .option('--opensearch <url>', 'also ship to this OpenSearch node (repeatable; output.opensearch.hosts)', collect(String))
    .option('--no-console', 'no NDJSON on stdout (output.console.enabled: false)')
    .option('--otlp <url>', 'also export spans and duration histograms over OTLP to this endpoint (e.g. http://localhost:4318)')
    .option('--otlp-protocol <protocol>', 'OTLP protocol: http/protobuf (default), http/json or grpc')
    .option('--otlp-header <name=value>', 'header (gRPC metadata) sent with every OTLP export (repeatable)', collect(String))
    .action(async (flags: RunFlags) => {
      const logger = createLogger();
      const config = loadConfig(flags);
      ensureTracefs();
      const agent = startAgent(config, logger, { record: flags.record });
      exitCode = await agent.done;
    });

  program
    .command('replay <file>')
    .description('decode a pcap/pcapng capture into transactions (NDJSON on stdout); no root needed')
    .option('-c, --config <file>', 'YAML config file (default /etc/packetbeat-ebpf/packetbeat-ebpf.yml when present)')
    .option('--ports <proto=port,...>', 'ports of a protocol, replacing its defaults (repeatable), e.g. http=8080,8081', collect(String))
    .option('--es <url>', 'also ship to this Elasticsearch node (repeatable)', collect(String))
    .option('--opensearch <url>', 'also ship to this OpenSearch node (repeatable)', collect(String))
    .option('--no-console', 'no NDJSON on stdout')
    .option('--otlp <url>', 'also export spans and duration histograms over OTLP to this endpoint (e.g. http://localhost:4318)')
    .option('--otlp-protocol <protocol>', 'OTLP protocol: http/protobuf (default), http/json or grpc')
    .option('--otlp-header <name=value>', 'header (gRPC metadata) sent with every OTLP export (repeatable)', collect(String))
    .action(async (file: string, flags: RunFlags) => {
      const logger = createLogger();
      const config = loadConfig(flags);
      const outputs = createOutputs(config, logger);
      try {
        const result = await replayCapture(file, config, outputs, logger, { flush: false });
        await closeOutputs(outputs, REPLAY_FLUSH_MS);
        const stats = Object.fromEntries(outputs.map((o) => [o.name, o.stats()]));
        logger.info({ stats: { ...result.pipeline, capture: result.capture, outputs: stats } }, 'replayed');
      } catch (err) {
        await Promise.all(outputs.map((o) => o.close?.()));
        throw err;
      }
    });

  program
    .command('check')
    .description('print what the running kernel supports and which capture mode run would use')
    .option('--json', 'print the report as JSON')
    .action((flags: { json?: boolean }) => {
      const report = checkKernel();
      process.stdout.write((flags.json ? JSON.stringify(report) : formatCheck(report)) + '\n');
      exitCode = report.mode ? 0 : 1;
    });

  registerSetupCommand(program, (config) => loadConfig({ config }), (code) => (exitCode = code));

  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (e.code?.startsWith('commander.')) return e.exitCode ?? 1;
    if (err instanceof ConfigError || err instanceof CaptureStartError || err instanceof ReplayError || err instanceof OutputConfigError || err instanceof SpoolError) {
      process.stderr.write(`packetbeat-ebpf: ${e.message}\n`);
      if (err instanceof CaptureStartError && err.detail && process.env.PBE_LOG_LEVEL === 'debug') process.stderr.write(err.detail + '\n');
      return 1;
    }
    throw err;
  }
  return exitCode;
}
