import type { Command } from 'commander';
import type { Config } from '../config';
import { EXIT_CODES, SetupError } from '../setup/errors';
import type { SetupFlags } from '../setup/run';

// the clients behind setup load only when it runs: `run` starts capturing ~1 s sooner
const setupModule = () => require('../setup/run') as typeof import('../setup/run');

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** `packetbeat-ebpf setup`: index template, lifecycle policy, dashboards. */
export function registerSetupCommand(program: Command, loadConfig: (file: string | undefined) => Config, setExitCode: (code: number) => void): void {
  program
    .command('setup')
    .description(
      'install the index template, the lifecycle policy (ILM / ISM) and the dashboards into Elasticsearch + Kibana or OpenSearch + OpenSearch Dashboards; safe to run again',
    )
    .option('-c, --config <file>', 'YAML config file: output.elasticsearch / output.opensearch, setup.kibana, setup.lifecycle')
    .option('--es <url>', 'Elasticsearch URL, e.g. https://localhost:9200 (8.0 or later)')
    .option('--opensearch <url>', 'OpenSearch URL, e.g. https://localhost:9200 (2.0 or later)')
    .option('--kibana <url>', 'Kibana URL, e.g. http://localhost:5601 (7.10 or later)')
    .option('--opensearch-dashboards <url>', 'OpenSearch Dashboards URL, e.g. http://localhost:5601')
    .option('--api-key <key>', 'Elasticsearch API key (base64 id:key)')
    .option('--username <user>', 'user for the cluster (and the dashboards unless --kibana-username)')
    .option('--password <password>', 'its password')
    .option('--ca <file>', 'PEM file of a CA to trust (repeatable)', collect)
    .option('--insecure', 'do not verify TLS certificates (testing only)')
    .option('--kibana-api-key <key>', 'API key for Kibana (default: the cluster credentials)')
    .option('--kibana-username <user>', 'user for Kibana / OpenSearch Dashboards')
    .option('--kibana-password <password>', 'its password')
    .option('--kibana-ca <file>', 'PEM file of a CA to trust for the dashboards server (repeatable; default: --ca)', collect)
    .option('--kibana-space <id>', 'Kibana space to import the dashboards into')
    .option('--rollover-age <age>', 'roll the data streams over at this age (default 30d)')
    .option('--rollover-size <size>', 'or at this primary shard size (default 50gb)')
    .option('--delete-after <age>', 'delete backing indices this long after their rollover (default: keep)')
    .option('--export <dir>', 'also write the template, policies and saved objects (NDJSON) into DIR, to install by hand')
    .action(async (flags: SetupFlags & { config?: string }) => {
      try {
        const { planSetup, runSetup } = setupModule();
        const plan = planSetup(flags, loadConfig(flags.config));
        setExitCode(await runSetup(plan, (line) => process.stdout.write(line + '\n')));
      } catch (err) {
        if (!(err instanceof SetupError)) throw err;
        process.stderr.write(`packetbeat-ebpf setup: ${err.message}\n`);
        setExitCode(EXIT_CODES[err.kind]);
      }
    });
}
