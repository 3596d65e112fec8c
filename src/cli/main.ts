import { Command, InvalidArgumentError } from 'commander';
import { checkKernel, ensureTracefs, formatCheck } from '../agent/check';
import { replayCapture, ReplayError } from '../agent/replay';
import { startAgent } from '../agent/run';
import { createConsoleOutput } from '../outputs/console';
import { CaptureStartError } from '../capture/ebpf-source';
import { ConfigError, parsePortsFlag, readConfigFile, validateConfig, type Config } from '../config';
import { AGENT_VERSION } from '../publish/document';
import { createLogger } from '../util/logger';

interface RunFlags {
  config?: string;
  mode?: string;
  ports?: string[];
  maxPayload?: number;
  pid?: number[];
  statsInterval?: number;
  record?: string;
}

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a whole number`);
    return Number(v);
  };
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
  if (flags.mode !== undefined) merged.mode = flags.mode;
  if (flags.maxPayload !== undefined) merged.max_payload = flags.maxPayload;
  if (flags.statsInterval !== undefined) merged.stats_interval_s = flags.statsInterval;
  if (flags.pid && flags.pid.length > 0) merged.pids = flags.pid;
  if (flags.ports && flags.ports.length > 0) {
    const protocols = { ...((merged.protocols as Record<string, Record<string, unknown>>) ?? {}) };
    for (const spec of flags.ports) {
      const [name, ports] = parsePortsFlag(spec);
      protocols[name] = { ...(protocols[name] ?? {}), ports };
    }
    merged.protocols = protocols;
  }
  return validateConfig(merged, flags.config || flags.ports || flags.mode || flags.maxPayload !== undefined ? `${origin} and flags` : origin);
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('packetbeat-ebpf')
    .description('Application transactions (HTTP; databases next) from inside the kernel with eBPF, each attributed to its process')
    .version(AGENT_VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run', { isDefault: true })
    .description('capture transactions and print them as NDJSON on stdout (logs and stats on stderr)')
    .option('-c, --config <file>', 'YAML config file (default /etc/packetbeat-ebpf/packetbeat-ebpf.yml when present)')
    .option('--ports <proto=port,...>', 'ports of a protocol, replacing its defaults (repeatable), e.g. http=8080,8081', collect(String))
    .option('--mode <mode>', 'capture mode: auto, syscall, kprobe or packet (AF_PACKET: traffic of other hosts and namespaces)')
    .option('--max-payload <bytes>', 'bytes of payload head copied per syscall (64-16384)', intArg('--max-payload'))
    .option('--pid <pid>', 'trace only this process (repeatable)', collect(intArg('--pid')))
    .option('--stats-interval <seconds>', 'seconds between stats lines on stderr (0: only at exit)', intArg('--stats-interval'))
    .option('--record <file>', 'also write the raw kernel events to FILE (for tests and bug reports)')
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
    .action(async (file: string, flags: RunFlags) => {
      const logger = createLogger();
      const config = loadConfig(flags);
      const output = createConsoleOutput({ pretty: config.output.console.pretty });
      const result = await replayCapture(file, config, [output], logger);
      logger.info({ stats: { ...result.pipeline, capture: result.capture, output: output.stats() } }, 'replayed');
    });

  program
    .command('check')
    .description('print what the running kernel supports and which capture mode run would use')
    .action(() => {
      const report = checkKernel();
      process.stdout.write(formatCheck(report) + '\n');
      exitCode = report.mode ? 0 : 1;
    });

  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (e.code?.startsWith('commander.')) return e.exitCode ?? 1;
    if (err instanceof ConfigError || err instanceof CaptureStartError || err instanceof ReplayError) {
      process.stderr.write(`packetbeat-ebpf: ${e.message}\n`);
      if (err instanceof CaptureStartError && err.detail && process.env.PBE_LOG_LEVEL === 'debug') process.stderr.write(err.detail + '\n');
      return 1;
    }
    throw err;
  }
  return exitCode;
}
