/**
 * `packetbeat-ebpf setup`: what to install where (flags over configuration),
 * then each cluster and each dashboards server in turn, one line per step.
 */
import type { Config } from '../config';
import { setupCluster, type StepResult } from './cluster';
import { checkCredentials, checkUrl, clusterFromOutput, type ClusterTarget, type Credentials, type DashboardsTarget, type OutputSection } from './connection';
import { setupDashboards } from './dashboards-import';
import { EXIT_CODES, SetupError } from './errors';
import { writeExport } from './export';
import { validateLifecycle, type LifecycleOptions } from './index-template';

export interface SetupFlags {
  es?: string;
  opensearch?: string;
  kibana?: string;
  opensearchDashboards?: string;
  apiKey?: string;
  username?: string;
  password?: string;
  ca?: string[];
  insecure?: boolean;
  kibanaApiKey?: string;
  kibanaUsername?: string;
  kibanaPassword?: string;
  kibanaCa?: string[];
  kibanaSpace?: string;
  rolloverAge?: string;
  rolloverSize?: string;
  deleteAfter?: string;
  export?: string;
}

export interface SetupPlan {
  clusters: ClusterTarget[];
  dashboards: DashboardsTarget[];
  lifecycle: LifecycleOptions;
  exportDir?: string;
}

/** The output sections of the configuration, when it has them (output.elasticsearch / output.opensearch). */
function outputSection(config: Config, name: 'elasticsearch' | 'opensearch'): OutputSection | undefined {
  const section = (config.output as Record<string, unknown>)[name] as (OutputSection & { enabled?: boolean }) | undefined;
  return section && section.enabled !== false && section.hosts && section.hosts.length > 0 ? section : undefined;
}

function flagCredentials(f: SetupFlags): Credentials {
  return { apiKey: f.apiKey, username: f.username, password: f.password };
}

function hasCredentials(c: Credentials): boolean {
  return Boolean(c.apiKey || c.username);
}

/** Decide what to do from the flags and the configuration; usage errors are thrown. */
export function planSetup(f: SetupFlags, config: Config): SetupPlan {
  const lc = config.setup.lifecycle;
  const lifecycle: LifecycleOptions = { rolloverAge: f.rolloverAge ?? lc.rollover_age, rolloverSize: f.rolloverSize ?? lc.rollover_size };
  const deleteAfter = f.deleteAfter ?? lc.delete_after;
  if (deleteAfter !== undefined) lifecycle.deleteAfter = deleteAfter;
  const lifecycleProblem = validateLifecycle(lifecycle);
  if (lifecycleProblem) throw new SetupError('usage', lifecycleProblem);

  // clusters: the flags when given, else the configured outputs; flags' credentials win
  const credentials = flagCredentials(f);
  checkCredentials(credentials, 'flags');
  const tls = { caFiles: f.ca ?? [], verify: !f.insecure };
  const clusters: ClusterTarget[] = [];
  if (f.es) clusters.push({ flavor: 'elasticsearch', hosts: [checkUrl(f.es, '--es')], ...credentials, tls });
  if (f.opensearch) clusters.push({ flavor: 'opensearch', hosts: [checkUrl(f.opensearch, '--opensearch')], ...credentials, tls });
  if (!f.es && !f.opensearch) {
    for (const flavor of ['elasticsearch', 'opensearch'] as const) {
      const section = outputSection(config, flavor);
      if (!section) continue;
      const target = clusterFromOutput(flavor, section);
      clusters.push(hasCredentials(credentials) ? { ...target, apiKey: credentials.apiKey, username: credentials.username, password: credentials.password } : target);
      if (f.ca || f.insecure) clusters[clusters.length - 1].tls = { caFiles: [...target.tls.caFiles, ...(f.ca ?? [])], verify: target.tls.verify && !f.insecure };
    }
  }
  for (const c of clusters) if (c.flavor === 'opensearch' && c.apiKey) throw new SetupError('usage', 'OpenSearch has no API keys: use --username/--password');

  // dashboards: flags, else setup.kibana / setup.opensearch_dashboards; credentials default to the cluster's
  const dashboards: DashboardsTarget[] = [];
  const kibanaCredentials: Credentials = { apiKey: f.kibanaApiKey, username: f.kibanaUsername, password: f.kibanaPassword };
  checkCredentials(kibanaCredentials, 'Kibana flags');
  const fallback: Credentials = hasCredentials(kibanaCredentials) ? kibanaCredentials : { apiKey: clusters[0]?.apiKey, username: clusters[0]?.username, password: clusters[0]?.password };
  const kibanaTls = { caFiles: f.kibanaCa ?? f.ca ?? [], verify: !f.insecure };
  const fromFlags: Array<[DashboardsTarget['flavor'], string | undefined, string]> = [
    ['kibana', f.kibana, '--kibana'],
    ['opensearch-dashboards', f.opensearchDashboards, '--opensearch-dashboards'],
  ];
  for (const [flavor, url, flag] of fromFlags) {
    if (url) dashboards.push({ flavor, url: checkUrl(url, flag), ...fallback, space: f.kibanaSpace, tls: kibanaTls });
  }
  if (!f.kibana && !f.opensearchDashboards) {
    for (const [flavor, section, where] of [
      ['kibana', config.setup.kibana, 'setup.kibana'],
      ['opensearch-dashboards', config.setup.opensearch_dashboards, 'setup.opensearch_dashboards'],
    ] as const) {
      if (!section) continue;
      const own: Credentials = { apiKey: section.api_key, username: section.username, password: section.password };
      checkCredentials(own, where);
      dashboards.push({
        flavor,
        url: checkUrl(section.host, `${where}.host`),
        ...(hasCredentials(kibanaCredentials) ? kibanaCredentials : hasCredentials(own) ? own : fallback),
        space: f.kibanaSpace ?? section.space,
        tls: { caFiles: [...section.ssl.certificate_authorities, ...(f.kibanaCa ?? [])], verify: section.ssl.verification_mode !== 'none' && !f.insecure },
      });
    }
  }
  if (clusters.length === 0 && dashboards.length === 0 && !f.export) {
    throw new SetupError(
      'usage',
      'nothing to set up: give --es URL or --opensearch URL (and --kibana / --opensearch-dashboards URL), configure output.elasticsearch / output.opensearch, or --export DIR',
    );
  }
  return { clusters, dashboards, lifecycle, exportDir: f.export };
}

/** One printable line per step. */
export function formatStep(target: string, r: StepResult): string {
  const mark = r.status === 'ok' ? 'ok' : r.status === 'skipped' ? 'skipped' : 'FAILED';
  return `${target}: ${r.step}: ${mark}: ${r.status === 'failed' ? r.error.message : r.detail}`;
}

/** Run the plan; returns the exit code (0, or the first failure's). */
export async function runSetup(plan: SetupPlan, print: (line: string) => void): Promise<number> {
  let exitCode = 0;
  const fail = (e: SetupError) => {
    if (exitCode === 0) exitCode = EXIT_CODES[e.kind];
  };
  if (plan.exportDir) {
    try {
      for (const file of writeExport(plan.exportDir, plan.lifecycle)) print(`export: wrote ${file}`);
    } catch (err) {
      const e = err instanceof SetupError ? err : new SetupError('usage', (err as Error).message);
      print(`export: FAILED: ${e.message}`);
      fail(e);
    }
  }
  for (const c of plan.clusters) {
    for (const r of await setupCluster(c, { lifecycle: plan.lifecycle })) {
      print(formatStep(c.flavor, r));
      if (r.status === 'failed') fail(r.error);
    }
  }
  for (const d of plan.dashboards) {
    for (const r of await setupDashboards(d)) {
      print(formatStep(d.flavor, r));
      if (r.status === 'failed') fail(r.error);
    }
  }
  return exitCode;
}
