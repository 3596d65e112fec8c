/** Small REST calls to a test search node (OpenSearch, or Elasticsearch at ES_URL). */

export interface SearchTarget {
  url: string;
  /** Extra headers, e.g. Authorization for a real Elasticsearch. */
  headers?: Record<string, string>;
}

export async function call(target: SearchTarget, method: string, route: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(target.url + route, {
    method,
    headers: { 'content-type': 'application/json', ...target.headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * A minimal data stream template for the tests (the real one comes from `setup`):
 * matching indices become data streams, with the mappings given.
 */
export async function putTestTemplate(target: SearchTarget, name: string, pattern: string, properties: Record<string, unknown> = {}): Promise<void> {
  const r = await call(target, 'PUT', `/_index_template/${name}`, {
    index_patterns: [pattern],
    data_stream: {},
    priority: 500,
    template: { settings: { number_of_replicas: 0 }, mappings: { properties: { '@timestamp': { type: 'date' }, ...properties } } },
  });
  if (r.status !== 200) throw new Error(`cannot install test template ${name}: ${JSON.stringify(r.json)}`);
}

export interface Hit {
  _id: string;
  _index: string;
  _source: Record<string, any>;
}

/** Hits per page of allDocs (the node's default max_result_window). */
const PAGE = 10_000;

/** Every document of an index, after a refresh (scrolled: more than one page may come). */
export async function allDocs(target: SearchTarget, index: string): Promise<Hit[]> {
  await call(target, 'POST', `/${index}/_refresh`);
  let r = await call(target, 'POST', `/${index}/_search?scroll=1m`, { size: PAGE, query: { match_all: {} }, sort: [{ '@timestamp': 'asc' }] });
  if (r.status === 404) return [];
  const hits: Hit[] = [];
  try {
    for (;;) {
      if (r.status !== 200) throw new Error(`search ${index}: ${JSON.stringify(r.json)}`);
      const page = r.json.hits.hits as Hit[];
      hits.push(...page);
      if (page.length < PAGE) return hits;
      r = await call(target, 'POST', '/_search/scroll', { scroll: '1m', scroll_id: r.json._scroll_id });
    }
  } finally {
    if (r.json?._scroll_id) await call(target, 'DELETE', '/_search/scroll', { scroll_id: r.json._scroll_id });
  }
}

export async function count(target: SearchTarget, index: string): Promise<number> {
  await call(target, 'POST', `/${index}/_refresh`);
  const r = await call(target, 'GET', `/${index}/_count`);
  return r.status === 200 ? (r.json.count as number) : 0;
}

/**
 * Poll until `pred` holds, or fail saying what was last seen. A `get` that throws
 * is polled again (a node answers 503 while a new index's shards start, or while
 * it restarts); at the deadline its last error is the reason given.
 */
export async function eventually<T>(what: string, get: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const v = await get();
      if (pred(v)) return v;
      last = JSON.stringify(v).slice(0, 500);
    } catch (err) {
      last = `error: ${(err as Error).message.slice(0, 500)}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
