import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { DEFAULT_SPOOL_ROOT, type OpenSearchOutputConfig } from '../config';
import type { Logger } from '../util/logger';
import { createDeliveryOutput, type DeliveryOptions, type DeliveryOutput } from './delivery/delivery';
import { compileIndexName } from './delivery/records';
import { SpoolError } from './delivery/spool';
import type { BulkSink } from './delivery/types';

/** What Elasticsearch and OpenSearch outputs share in their configuration. */
export type BackendOutputConfig = OpenSearchOutputConfig;

export class OutputConfigError extends Error {}

/** TLS settings for a client: the CA files read now, so a bad path fails at start. */
export function tlsOptions(cfg: BackendOutputConfig, name: string): TlsOptions | undefined {
  const { certificate_authorities: cas, verification_mode: mode } = cfg.ssl;
  if (cas.length === 0 && mode === 'full') return undefined;
  const ca = cas.map((file) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new OutputConfigError(`output.${name}.ssl.certificate_authorities: cannot read ${file}: ${(err as Error).message}`);
    }
  });
  return { ...(ca.length > 0 ? { ca } : {}), rejectUnauthorized: mode !== 'none' };
}

/** One attempt per host per request; the delivery layer retries with backoff. */
export function transportRetries(cfg: BackendOutputConfig): number {
  return cfg.hosts.length - 1;
}

/** A backend output: the shared delivery layer over this client's bulk sink. */
export function createBackendOutput(name: string, cfg: BackendOutputConfig, sink: BulkSink, logger: Logger): DeliveryOutput {
  const options: DeliveryOptions = {
    name,
    sink,
    logger,
    indexOf: compileIndexName(cfg.index),
    batchMaxDocs: cfg.bulk_max_size,
    batchMaxBytes: cfg.bulk_max_bytes,
    flushIntervalMs: cfg.flush_interval_ms,
    queueMaxBytes: cfg.queue.max_bytes,
    spool: cfg.spool.enabled ? { dir: cfg.spool.dir ?? path.join(DEFAULT_SPOOL_ROOT, name), maxBytes: cfg.spool.max_bytes } : undefined,
    backoffInitMs: cfg.backoff.init_ms,
    backoffMaxMs: cfg.backoff.max_ms,
  };
  try {
    return createDeliveryOutput(options);
  } catch (err) {
    if (err instanceof SpoolError) {
      throw new SpoolError(`output.${name}.spool: ${err.message} (set spool.dir to a writable directory, or spool.enabled: false)`);
    }
    throw err;
  }
}
