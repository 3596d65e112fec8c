/**
 * Importing the saved objects into Kibana or OpenSearch Dashboards through
 * their saved-objects import API (overwrite=true: running setup again
 * replaces them). Plain HTTP(S) requests: Node 20's fetch cannot take a CA
 * file without the undici package, node:https can.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { StepResult } from './cluster';
import { readCas, type DashboardsTarget } from './connection';
import { classifyError, SetupError, versionAtLeast } from './errors';
import { buildSavedObjects, toNdjson } from './saved-objects';

/** The saved objects are written in the 7.10 shape (what OpenSearch Dashboards kept). */
export const MIN_KIBANA = '7.10.0';
export const MIN_OPENSEARCH_DASHBOARDS = '1.0.0';

const REQUEST_TIMEOUT_MS = 60_000;

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

function request(t: DashboardsTarget, method: string, path: string, body?: { contentType: string; data: Buffer }): Promise<Response> {
  const base = new URL(t.url);
  const prefix = t.space && t.flavor === 'kibana' ? `/s/${encodeURIComponent(t.space)}` : '';
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}${prefix}${path}`, base);
  const headers: Record<string, string> = {
    accept: 'application/json',
    // each product checks its own header and ignores the other's
    'kbn-xsrf': 'packetbeat-ebpf',
    'osd-xsrf': 'packetbeat-ebpf',
  };
  if (t.apiKey) headers.authorization = `ApiKey ${t.apiKey}`;
  else if (t.username) headers.authorization = `Basic ${Buffer.from(`${t.username}:${t.password ?? ''}`).toString('base64')}`;
  if (body) {
    headers['content-type'] = body.contentType;
    headers['content-length'] = String(body.data.length);
  }
  const ca = readCas(t.tls);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      { method, headers, timeout: REQUEST_TIMEOUT_MS, ...(url.protocol === 'https:' ? { ca: ca.length > 0 ? ca : undefined, rejectUnauthorized: t.tls.verify } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON (a proxy's HTML page): keep the text for the error
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000}s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body?.data);
  });
}

/** Throw the response as the error a client would have thrown, for classifyError. */
function check(r: Response): Response {
  if (r.status >= 400) throw Object.assign(new Error(`HTTP ${r.status}`), { statusCode: r.status, body: r.body });
  return r;
}

function multipart(name: string, filename: string, contentType: string, data: string): { contentType: string; data: Buffer } {
  const boundary = `----packetbeat-ebpf-${Date.now().toString(16)}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: ${contentType}\r\n\r\n`;
  return { contentType: `multipart/form-data; boundary=${boundary}`, data: Buffer.concat([Buffer.from(head), Buffer.from(data), Buffer.from(`\r\n--${boundary}--\r\n`)]) };
}

interface ImportResponse {
  success?: boolean;
  successCount?: number;
  errors?: Array<{ id: string; type: string; title?: string; error?: { type?: string; message?: string } }>;
}

/** Check the product and version, then import every saved object (overwriting). */
export async function setupDashboards(t: DashboardsTarget, ndjson = toNdjson(buildSavedObjects())): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const product = t.flavor === 'kibana' ? 'Kibana' : 'OpenSearch Dashboards';
  let step = 'connect';
  try {
    const status = check(await request(t, 'GET', '/api/status'));
    const version = String((status.body as { version?: { number?: string } })?.version?.number ?? '');
    // Kibana names itself in kbn-name, OpenSearch Dashboards in osd-name
    const isOsd = status.headers['osd-name'] !== undefined;
    if (!version) throw new SetupError('version', `${t.url} answered /api/status without a version: is it ${product}?`);
    if (isOsd !== (t.flavor === 'opensearch-dashboards')) {
      throw new SetupError('version', `${t.url} is ${isOsd ? 'OpenSearch Dashboards' : 'Kibana'} ${version}: use ${isOsd ? '--opensearch-dashboards' : '--kibana'}`);
    }
    const min = t.flavor === 'kibana' ? MIN_KIBANA : MIN_OPENSEARCH_DASHBOARDS;
    if (!versionAtLeast(version, min)) throw new SetupError('version', `${t.url} runs ${product} ${version}; setup needs ${min} or later`);
    results.push({ status: 'ok', step, detail: `${product} ${version} at ${t.url}` });

    step = 'saved objects';
    const r = check(await request(t, 'POST', '/api/saved_objects/_import?overwrite=true', multipart('file', 'packetbeat-ebpf.ndjson', 'application/ndjson', ndjson)));
    const body = r.body as ImportResponse;
    const expected = ndjson.trimEnd().split('\n').length;
    if (!body?.success || body.successCount !== expected) {
      const errors = (body?.errors ?? []).map((e) => `${e.type} ${e.id}: ${e.error?.type ?? ''} ${e.error?.message ?? ''}`.trim());
      throw new SetupError('rejected', `${product} imported ${body?.successCount ?? 0} of ${expected} saved objects: ${errors.join('; ') || JSON.stringify(body)}`);
    }
    results.push({ status: 'ok', step, detail: `${expected} saved objects imported (data view, visualizations, searches, dashboards)` });
  } catch (err) {
    results.push({ status: 'failed', step, error: classifyError(err, step, t.url) });
  }
  return results;
}
