/**
 * Where `setup` connects, and with what credentials: from flags, or from the
 * configuration's output sections (the same keys the outputs use: hosts,
 * api_key, username, password, ssl.certificate_authorities) and its
 * setup.kibana section.
 */
import * as fs from 'node:fs';
import { SetupError } from './errors';

export interface Credentials {
  apiKey?: string;
  username?: string;
  password?: string;
}

export interface TlsOptions {
  /** PEM files of the CAs to trust (besides the system's). */
  caFiles: string[];
  /** false: accept any certificate (testing only). */
  verify: boolean;
}

export interface ClusterTarget extends Credentials {
  flavor: 'elasticsearch' | 'opensearch';
  hosts: string[];
  tls: TlsOptions;
}

export interface DashboardsTarget extends Credentials {
  flavor: 'kibana' | 'opensearch-dashboards';
  url: string;
  /** Kibana space (ignored by OpenSearch Dashboards). */
  space?: string;
  tls: TlsOptions;
}

/** An output section as the configuration has it (output.elasticsearch / output.opensearch). */
export interface OutputSection {
  hosts?: string[];
  api_key?: string;
  username?: string;
  password?: string;
  ssl?: { certificate_authorities?: string[]; verification_mode?: 'full' | 'none' };
}

/** Credentials given twice is a mistake worth naming. */
export function checkCredentials(c: Credentials, where: string): void {
  if (c.apiKey && (c.username || c.password)) throw new SetupError('usage', `${where}: give an API key or a username/password, not both`);
  if (Boolean(c.username) !== Boolean(c.password)) throw new SetupError('usage', `${where}: a username needs a password and a password a username`);
}

/** A URL a client can use: http(s) with a host. */
export function checkUrl(url: string, where: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SetupError('usage', `${where}: "${url}" is not a URL (e.g. https://localhost:9200)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SetupError('usage', `${where}: "${url}" must be http:// or https://`);
  return url.replace(/\/+$/, '');
}

/** The CA files' contents, read now so a missing file is a clear usage error. */
export function readCas(tls: TlsOptions): Buffer[] {
  return tls.caFiles.map((f) => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new SetupError('usage', `cannot read CA file ${f}: ${(err as Error).message}`);
    }
  });
}

/** A cluster target from an output section of the configuration. */
export function clusterFromOutput(flavor: ClusterTarget['flavor'], section: OutputSection): ClusterTarget {
  const where = `output.${flavor}`;
  if (!section.hosts || section.hosts.length === 0) throw new SetupError('usage', `${where}.hosts is empty`);
  const target: ClusterTarget = {
    flavor,
    hosts: section.hosts.map((h) => checkUrl(h, `${where}.hosts`)),
    apiKey: section.api_key,
    username: section.username,
    password: section.password,
    tls: { caFiles: section.ssl?.certificate_authorities ?? [], verify: section.ssl?.verification_mode !== 'none' },
  };
  checkCredentials(target, where);
  if (flavor === 'opensearch' && target.apiKey) throw new SetupError('usage', `${where}: OpenSearch has no API keys; use username/password`);
  return target;
}
