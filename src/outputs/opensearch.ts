import * as http from 'node:http';
import * as https from 'node:https';
import { Client, type ClientOptions } from '@opensearch-project/opensearch';
import type { OpenSearchOutputConfig } from '../config';
import type { Logger } from '../util/logger';
import { createBackendOutput, tlsOptions, transportRetries } from './backend';
import { createHelperSink, type HelperBulk } from './delivery/helper-sink';
import type { DeliveryOutput } from './delivery/delivery';

/** Keep-alive agents like the client's own, kept so that closing can cut their sockets. */
function agentsFor(ssl: ClientOptions['ssl']) {
  const agents: Array<http.Agent | https.Agent> = [];
  const make = (opts: { url: URL }) => {
    const options = { keepAlive: true, keepAliveMsecs: 1000, maxSockets: 256, scheduling: 'lifo' as const };
    const agent = opts.url.protocol === 'https:' ? new https.Agent({ ...options, ...ssl }) : new http.Agent(options);
    agents.push(agent);
    return agent;
  };
  return { make, destroy: () => agents.forEach((a) => a.destroy()) };
}

export function openSearchClientOptions(cfg: OpenSearchOutputConfig): ClientOptions {
  const options: ClientOptions = {
    nodes: cfg.hosts,
    requestTimeout: cfg.timeout_ms,
    maxRetries: transportRetries(cfg),
    name: 'packetbeat-ebpf',
  };
  if (cfg.username) options.auth = { username: cfg.username, password: cfg.password ?? '' };
  const ssl = tlsOptions(cfg, 'opensearch');
  if (ssl) options.ssl = ssl;
  return options;
}

export function createOpenSearchOutput(cfg: OpenSearchOutputConfig, logger: Logger, name = 'opensearch'): DeliveryOutput {
  const options = openSearchClientOptions(cfg);
  // closing cuts a request still in flight (its batch is on disk by then); the
  // client's own close would wait for it up to timeout_ms
  const agents = agentsFor(options.ssl);
  const client = new Client({ ...options, agent: agents.make as unknown as ClientOptions['agent'] });
  const bulk = client.helpers.bulk.bind(client.helpers) as unknown as HelperBulk;
  const close = async () => {
    agents.destroy();
    await client.close();
  };
  return createBackendOutput(name, cfg, createHelperSink(bulk, close), logger);
}
