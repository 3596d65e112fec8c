/**
 * Installing the index template and the lifecycle policy into Elasticsearch
 * (official @elastic/elasticsearch client) or OpenSearch (official
 * @opensearch-project/opensearch client). Every step is a PUT of the
 * generated body, so running setup again is safe.
 */
import { Client as EsClient } from '@elastic/elasticsearch';
import { Client as OsClient } from '@opensearch-project/opensearch';
import { AGENT_VERSION } from '../publish/document';
import type { ClusterTarget } from './connection';
import { readCas } from './connection';
import { classifyError, SetupError, versionAtLeast } from './errors';
import {
  buildIlmPolicy,
  buildIndexTemplate,
  buildIsmPolicy,
  buildMappings,
  INDEX_PATTERN,
  POLICY_NAME,
  TEMPLATE_NAME,
  type LifecycleOptions,
} from './index-template';

/** The Elasticsearch client is 8.x: it speaks to 8.x and 9.x clusters. */
export const MIN_ELASTICSEARCH = '8.0.0';
/** Composable templates, data streams and ISM rollover of data streams. */
export const MIN_OPENSEARCH = '2.0.0';

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_RETRIES = 2;

/** One line of what setup did (or why not). */
export type StepResult =
  | { status: 'ok'; step: string; detail: string }
  | { status: 'skipped'; step: string; detail: string }
  | { status: 'failed'; step: string; error: SetupError };

type Json = Record<string, any>;

/** What the two clients share for setup's purposes. */
interface ClusterApi {
  info(): Promise<Json>;
  putIndexTemplate(name: string, body: Json): Promise<void>;
  dataStreams(pattern: string): Promise<string[]>;
  putMapping(index: string, mappings: Json): Promise<void>;
  rollover(dataStream: string): Promise<void>;
  close(): Promise<void>;
}

function esApi(t: ClusterTarget): { api: ClusterApi; putIlm(name: string, body: Json): Promise<void> } {
  const ca = readCas(t.tls);
  const client = new EsClient({
    node: t.hosts,
    auth: t.apiKey ? { apiKey: t.apiKey } : t.username ? { username: t.username, password: t.password ?? '' } : undefined,
    tls: ca.length > 0 || !t.tls.verify ? { ca: ca.length > 0 ? ca : undefined, rejectUnauthorized: t.tls.verify } : undefined,
    requestTimeout: REQUEST_TIMEOUT_MS,
    maxRetries: MAX_RETRIES,
  });
  return {
    api: {
      info: async () => (await client.info()) as unknown as Json,
      putIndexTemplate: async (name, body) => {
        await client.indices.putIndexTemplate({ name, ...body } as never);
      },
      dataStreams: async (pattern) => {
        const r = await client.indices.getDataStream({ name: pattern });
        return r.data_streams.map((d) => d.name);
      },
      putMapping: async (index, mappings) => {
        await client.indices.putMapping({ index, write_index_only: true, ...mappings } as never);
      },
      rollover: async (alias) => {
        await client.indices.rollover({ alias });
      },
      close: () => client.close(),
    },
    putIlm: async (name, body) => {
      await client.ilm.putLifecycle({ name, ...body } as never);
    },
  };
}

function osApi(t: ClusterTarget): { api: ClusterApi; client: OsClient } {
  const ca = readCas(t.tls);
  const client = new OsClient({
    node: t.hosts,
    auth: t.username ? { username: t.username, password: t.password ?? '' } : undefined,
    ssl: ca.length > 0 || !t.tls.verify ? { ca: ca.length > 0 ? ca : undefined, rejectUnauthorized: t.tls.verify } : undefined,
    requestTimeout: REQUEST_TIMEOUT_MS,
    maxRetries: MAX_RETRIES,
  });
  return {
    client,
    api: {
      info: async () => (await client.info()).body as Json,
      putIndexTemplate: async (name, body) => {
        await client.indices.putIndexTemplate({ name, body } as never);
      },
      dataStreams: async (pattern) => {
        const r = await client.indices.getDataStream({ name: pattern });
        return ((r.body as Json).data_streams as Json[]).map((d) => d.name as string);
      },
      putMapping: async (index, mappings) => {
        await client.indices.putMapping({ index, write_index_only: true, body: mappings } as never);
      },
      rollover: async (alias) => {
        await client.indices.rollover({ alias });
      },
      close: () => client.close(),
    },
  };
}

/** Is the ISM plugin there? Its API answers; without it the node knows no such path. */
async function ismPolicy(client: OsClient): Promise<{ present: false } | { present: true; existing?: { policy: Json; seqNo: number; primaryTerm: number } }> {
  try {
    const r = await client.ism.getPolicy({ policy_id: POLICY_NAME });
    const b = r.body as Json;
    return { present: true, existing: { policy: b.policy, seqNo: b._seq_no, primaryTerm: b._primary_term } };
  } catch (err) {
    const e = err as { meta?: { statusCode?: number; body?: unknown } };
    const body = JSON.stringify(e.meta?.body ?? '');
    // without the plugin the node answers 400 "no handler found for uri [/_plugins/_ism/policies/...]"
    if (e.meta?.statusCode === 400 && /no handler found/i.test(body)) return { present: false };
    // the plugin answers 404 "Policy not found" for a policy not created yet, or
    // index_not_found_exception while no policy at all exists (its config index is made with the first)
    if (e.meta?.statusCode === 404 && /policy not found|index_not_found_exception/i.test(body)) return { present: true };
    throw err;
  }
}

/** The parts of an ISM policy we write, to tell whether the stored one differs. */
function ismEssence(p: Json): string {
  return JSON.stringify({
    description: p.description,
    default_state: p.default_state,
    states: p.states,
    ism_template: (p.ism_template ?? []).map((t: Json) => ({ index_patterns: t.index_patterns, priority: t.priority })),
  });
}

async function installIsm(client: OsClient, lifecycle: LifecycleOptions): Promise<StepResult> {
  const step = 'ISM policy';
  const state = await ismPolicy(client);
  if (!state.present) {
    return {
      status: 'skipped',
      step,
      detail: 'the index-management (ISM) plugin is not installed on this cluster: no lifecycle policy installed; data streams keep growing until rolled over by hand',
    };
  }
  const body = buildIsmPolicy(lifecycle) as Json;
  if (state.existing) {
    if (ismEssence(state.existing.policy) === ismEssence(body.policy)) return { status: 'ok', step, detail: `${POLICY_NAME} already up to date` };
    await client.ism.putPolicy({ policy_id: POLICY_NAME, if_seq_no: state.existing.seqNo, if_primary_term: state.existing.primaryTerm, body } as never);
    return { status: 'ok', step, detail: `${POLICY_NAME} updated (indices already managed keep the version they started with)` };
  }
  await client.ism.putPolicy({ policy_id: POLICY_NAME, body } as never);
  return { status: 'ok', step, detail: `${POLICY_NAME} created, attached to new ${INDEX_PATTERN} backing indices` };
}

/** Existing data streams get the new fields now (or roll over when a type changed). */
async function updateDataStreams(api: ClusterApi): Promise<StepResult> {
  const step = 'existing data streams';
  let names: string[];
  try {
    names = await api.dataStreams(INDEX_PATTERN);
  } catch (err) {
    if ((err as { meta?: { statusCode?: number } }).meta?.statusCode === 404) names = [];
    else throw err;
  }
  if (names.length === 0) return { status: 'ok', step, detail: 'none yet (created by the first document)' };
  const { dynamic_templates, properties, dynamic } = buildMappings() as Json;
  const done: string[] = [];
  for (const name of names) {
    try {
      await api.putMapping(name, { dynamic, dynamic_templates, properties });
      done.push(`${name}: mappings updated`);
    } catch (err) {
      if ((err as { meta?: { statusCode?: number } }).meta?.statusCode !== 400) throw err;
      // a field changed type: the next backing index takes the template's mapping
      await api.rollover(name);
      done.push(`${name}: rolled over (a field's type changed)`);
    }
  }
  return { status: 'ok', step, detail: done.join('; ') };
}

export interface ClusterSetupOptions {
  lifecycle: LifecycleOptions;
}

/**
 * Check the cluster, then install: lifecycle policy, index template, and the
 * template's mappings on data streams that already exist. Stops at the first
 * failure (later steps depend on the earlier ones).
 */
export async function setupCluster(t: ClusterTarget, o: ClusterSetupOptions): Promise<StepResult[]> {
  const url = t.hosts[0];
  const results: StepResult[] = [];
  let step = 'connect';
  let es: ReturnType<typeof esApi> | undefined;
  let os: ReturnType<typeof osApi> | undefined;
  try {
    es = t.flavor === 'elasticsearch' ? esApi(t) : undefined;
    os = t.flavor === 'opensearch' ? osApi(t) : undefined;
  } catch (err) {
    return [{ status: 'failed', step, error: classifyError(err, step, url) }];
  }
  const api = (es?.api ?? os?.api)!;
  try {
    const info = await api.info();
    const version = String(info.version?.number ?? '');
    const distribution = info.version?.distribution === 'opensearch' ? 'opensearch' : 'elasticsearch';
    if (distribution !== t.flavor) {
      throw new SetupError('version', `${url} is ${distribution === 'opensearch' ? 'OpenSearch' : 'Elasticsearch'} ${version}: use ${distribution === 'opensearch' ? '--opensearch' : '--es'}`);
    }
    const min = t.flavor === 'elasticsearch' ? MIN_ELASTICSEARCH : MIN_OPENSEARCH;
    if (!versionAtLeast(version, min)) throw new SetupError('version', `${url} runs ${t.flavor} ${version}; setup needs ${min} or later`);
    results.push({ status: 'ok', step, detail: `${t.flavor} ${version} at ${url}` });

    if (es) {
      step = 'ILM policy';
      await es.putIlm(POLICY_NAME, buildIlmPolicy(o.lifecycle));
      results.push({ status: 'ok', step, detail: `${POLICY_NAME} installed` });
    } else {
      step = 'ISM policy';
      results.push(await installIsm(os!.client, o.lifecycle));
    }
    step = 'index template';
    await api.putIndexTemplate(TEMPLATE_NAME, buildIndexTemplate(t.flavor));
    results.push({ status: 'ok', step, detail: `${TEMPLATE_NAME} (data streams ${INDEX_PATTERN}, agent ${AGENT_VERSION})` });
    step = 'existing data streams';
    results.push(await updateDataStreams(api));
  } catch (err) {
    results.push({ status: 'failed', step, error: classifyError(err, step, url) });
  } finally {
    await api.close().catch(() => {});
  }
  return results;
}
