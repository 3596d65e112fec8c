import { Client, type ClientOptions } from '@elastic/elasticsearch';
import type { ElasticsearchOutputConfig } from '../config';
import type { Logger } from '../util/logger';
import { createBackendOutput, tlsOptions, transportRetries } from './backend';
import { createHelperSink, type HelperBulk } from './delivery/helper-sink';
import type { DeliveryOutput } from './delivery/delivery';

/**
 * The client's options from our configuration. The 8.x client sends
 * `compatible-with=8` headers: Elasticsearch 8 takes them, and 9 through its REST
 * API compatibility (a 9.x client's `compatible-with=9` is refused by 8).
 */
export function elasticsearchClientOptions(cfg: ElasticsearchOutputConfig): ClientOptions {
  const options: ClientOptions = {
    nodes: cfg.hosts,
    requestTimeout: cfg.timeout_ms,
    maxRetries: transportRetries(cfg),
    name: 'packetbeat-ebpf',
  };
  if (cfg.api_key) options.auth = { apiKey: cfg.api_key };
  else if (cfg.username) options.auth = { username: cfg.username, password: cfg.password ?? '' };
  const tls = tlsOptions(cfg, 'elasticsearch');
  if (tls) options.tls = tls;
  return options;
}

export function createElasticsearchOutput(cfg: ElasticsearchOutputConfig, logger: Logger, name = 'elasticsearch'): DeliveryOutput {
  const client = new Client(elasticsearchClientOptions(cfg));
  // closing aborts a request still in flight (its batch is on disk by then); the
  // client's own close would wait for it up to timeout_ms
  const inFlight = new AbortController();
  const helpers = client.helpers as unknown as { bulk(options: unknown, reqOptions: { signal: AbortSignal }): PromiseLike<unknown> };
  const bulk: HelperBulk = (options) => helpers.bulk(options, { signal: inFlight.signal });
  const close = async () => {
    inFlight.abort();
    await client.close();
  };
  return createBackendOutput(name, cfg, createHelperSink(bulk, close), logger);
}
