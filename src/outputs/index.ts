import type { Config } from '../config';
import type { Logger } from '../util/logger';
import { createConsoleOutput } from './console';
import type { Output } from './types';

// the clients load only when their output is configured (together ~0.4 s of start-up)
const elasticsearchModule = () => require('./elasticsearch') as typeof import('./elasticsearch');
const openSearchModule = () => require('./opensearch') as typeof import('./opensearch');
const otlpModule = () => require('./otlp') as typeof import('./otlp');

/** The outputs the configuration enables, in a fixed order (console, elasticsearch, opensearch, otlp). */
export function createOutputs(config: Config, logger: Logger): Output[] {
  const outputs: Output[] = [];
  const { console: consoleCfg, elasticsearch, opensearch } = config.output;
  try {
    if (consoleCfg.enabled) outputs.push(createConsoleOutput({ pretty: consoleCfg.pretty }));
    if (elasticsearch?.enabled) outputs.push(elasticsearchModule().createElasticsearchOutput(elasticsearch, logger));
    if (opensearch?.enabled) outputs.push(openSearchModule().createOpenSearchOutput(opensearch, logger));
    // loaded only when used: the OpenTelemetry SDK and gRPC add ~150 ms to the start
    if (config.output.otlp.enabled) outputs.push(otlpModule().otlpOutputFromConfig(config.output.otlp, logger));
  } catch (err) {
    // the ones already made hold spool locks and connections
    void Promise.all(outputs.map((o) => o.close?.()));
    throw err;
  }
  return outputs;
}

/** Flush every output within `timeoutMs`, then close them (what is left is spooled or counted). */
export async function closeOutputs(outputs: Output[], timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)));
  await Promise.race([Promise.all(outputs.map((o) => o.flush())), timeout]);
  clearTimeout(timer);
  await Promise.all(outputs.map((o) => o.close?.()));
}
