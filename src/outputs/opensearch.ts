import { Client, type ClientOptions } from '@opensearch-project/opensearch';
import type { OpenSearchOutputConfig } from '../config';
import type { Logger } from '../util/logger';
import { createBackendOutput, tlsOptions, transportRetries } from './backend';
import { createHelperSink, type HelperBulk } from './delivery/helper-sink';
import type { DeliveryOutput } from './delivery/delivery';

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
  const client = new Client(openSearchClientOptions(cfg));
  const bulk = client.helpers.bulk.bind(client.helpers) as unknown as HelperBulk;
  return createBackendOutput(name, cfg, createHelperSink(bulk, () => client.close()), logger);
}
