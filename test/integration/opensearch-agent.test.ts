/**
 * The agent (`run`, syscall capture) shipping to a real OpenSearch node: curl →
 * nginx transactions indexed and queried back; the node stopped mid-run while the
 * traffic goes on and started again (every transaction exactly once); spooled
 * documents surviving an agent restart; documents rejected by a mapping conflict.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { openSearchSkip, startOpenSearch, type OpenSearchNode } from '../helpers/opensearch';
import { allDocs, count, eventually, putTestTemplate, type Hit } from '../helpers/search';
import { startNginx, type RunningServer } from '../helpers/servers';

const NGINX_PORT = 18090;
const skip = kernelSkip() || openSearchSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One curl request; resolves with curl's pid once it exited. */
function curl(url: string): Promise<number> {
  const child = spawn('curl', ['-s', '-o', '/dev/null', '--max-time', '5', url], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(child.pid!) : reject(new Error(`curl ${url} exited ${code}`))));
  });
}

/** Requests /hello?i=<n>, one after the other, until stopped; remembers each request's curl pid. */
function startTraffic(label: string) {
  const sent = new Map<string, number>();
  let running = true;
  const done = (async () => {
    for (let i = 0; running && i < 5000; i++) {
      const query = `${label}=${i}`;
      sent.set(query, await curl(`http://127.0.0.1:${NGINX_PORT}/hello?${query}`));
      await sleep(15);
    }
  })();
  return {
    sent,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The agent's JSON log lines (stderr) with this message. */
function logLines(agent: AgentRun, msg: RegExp): Array<Record<string, any>> {
  return agent.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => msg.test(l.msg));
}

const outputConfig = (node: OpenSearchNode, spoolDir: string, extra: Record<string, unknown> = {}) => ({
  hosts: [node.url],
  flush_interval_ms: 200,
  timeout_ms: 5000,
  backoff: { init_ms: 200, max_ms: 1000 },
  spool: { dir: spoolDir },
  ...extra,
});

const agentConfig = (opensearch: Record<string, unknown>) => ({
  protocols: { http: { ports: [NGINX_PORT] } },
  infer_protocols: false,
  transaction_timeout_ms: 1500,
  join_window_ms: 300,
  stats_interval_s: 1,
  output: { opensearch },
});

describe('run → OpenSearch (syscall capture, real node)', { skip }, () => {
  let node: OpenSearchNode;
  let nginx: RunningServer;
  const agents: AgentRun[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-os-agent-'));

  async function agent(config: Record<string, unknown>): Promise<AgentRun> {
    const a = await startAgent(config);
    agents.push(a);
    return a;
  }

  async function stopAgent(a: AgentRun): Promise<void> {
    a.child.kill('SIGTERM');
    const exit = await a.exited;
    assert.equal(exit.code, 0, `agent exit ${JSON.stringify(exit)}:\n${a.stderr.join('\n')}`);
  }

  before(async () => {
    node = await startOpenSearch();
    // test-only: the real template comes from `setup`
    await putTestTemplate(node, 'pbe-test', 'packetbeat-ebpf-*', {
      event: { properties: { id: { type: 'keyword' }, duration: { type: 'long' } } },
      url: { properties: { query: { type: 'keyword' }, path: { type: 'keyword' } } },
      process: { properties: { name: { type: 'keyword' } } },
    });
    await putTestTemplate(node, 'pbe-reject', 'pbe-reject-*', { url: { properties: { path: { type: 'boolean' } } } });
    nginx = await startNginx(NGINX_PORT);
  });

  after(async () => {
    for (const a of agents) if (a.child.exitCode === null) a.child.kill('SIGKILL');
    await nginx?.stop();
    await node?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('transactions are indexed with their processes; the node stopped and started mid-run loses and doubles none', async (t) => {
    const spoolDir = path.join(tmp, 'spool-outage');
    const a = await agent(agentConfig(outputConfig(node, spoolDir, { queue: { max_bytes: 64 * 1024 } })));
    const traffic = startTraffic('i');
    // a failure must not leave its traffic and agent running, or the node stopped, into the next test
    t.after(() => traffic.stop());
    t.after(() => void (a.child.exitCode === null && a.child.kill('SIGKILL')));
    t.after(() => node.start().catch(() => undefined)); // refused when it runs
    const ours = (hits: Hit[]) => hits.filter((h) => /^i=\d+$/.test(h._source.url?.query ?? ''));
    await eventually('documents before the outage', async () => ours(await allDocs(node, 'packetbeat-ebpf-http')).length, (n) => n >= 30, 30_000);

    await node.stop();
    const stoppedAt = Date.now();
    const sentAtStop = traffic.sent.size;
    await eventually('requests during the outage', async () => traffic.sent.size, (n) => n >= sentAtStop + 100, 60_000);
    await node.start();
    const outageMs = Date.now() - stoppedAt;
    const sentAtStart = traffic.sent.size;
    await eventually('requests after the restart', async () => traffic.sent.size, (n) => n >= sentAtStart + 30, 60_000);
    await traffic.stop();

    // every request the agent saw (its stdout) reaches the node
    const seen = () => a.docs.filter((d) => d.destination?.port === NGINX_PORT && /^i=\d+$/.test(d.url?.query ?? ''));
    await a.waitFor(() => seen().length === traffic.sent.size, 15_000);
    await eventually('every transaction indexed', async () => ours(await allDocs(node, 'packetbeat-ebpf-http')).length, (n) => n >= traffic.sent.size, 90_000);
    await stopAgent(a);

    const hits = ours(await allDocs(node, 'packetbeat-ebpf-http'));
    // exactly once: by the requests sent...
    const byQuery = new Map<string, Hit[]>();
    for (const h of hits) byQuery.set(h._source.url.query, [...(byQuery.get(h._source.url.query) ?? []), h]);
    const missing = [...traffic.sent.keys()].filter((q) => !byQuery.has(q));
    const doubled = [...byQuery].filter(([, hs]) => hs.length > 1).map(([q]) => q);
    assert.deepEqual(missing, [], 'no request missing');
    assert.deepEqual(doubled, [], 'no request indexed twice');
    assert.equal(hits.length, traffic.sent.size);
    // ...and by id: the documents the agent made, each under its event.id
    assert.deepEqual(new Set(hits.map((h) => h._id)), new Set(seen().map((d) => d.event.id)));
    for (const h of hits) {
      assert.equal(h._id, h._source.event.id);
      assert.equal(h._source.source.process.pid, traffic.sent.get(h._source.url.query), `${h._source.url.query}: the curl that sent it`);
      assert.equal(h._source.source.process.name, 'curl');
      assert.equal(h._source.destination.process.pid, nginx.pid);
      assert.equal(h._source.http.response.status_code, 200);
    }
    // the outage went through the spool, and nothing was left or lost
    const closed = logLines(a, /^outputs closed$/)[0];
    assert.ok(closed, a.stderr.slice(-5).join('\n'));
    const s = closed.outputs.opensearch;
    t.diagnostic(`${traffic.sent.size} requests, ${sentAtStart - sentAtStop} while the node was down (${outageMs} ms); spooled ${s.spooled}, failed requests ${s.failed_requests}, duplicates ${s.duplicates}`);
    assert.ok(s.spooled > 0, `spooled ${s.spooled}`);
    assert.ok(s.failed_requests > 0);
    assert.equal(s.dropped, 0);
    assert.equal(s.rejected, 0);
    assert.equal(s.spool_docs, 0);
    assert.deepEqual(fs.readdirSync(spoolDir).filter((f) => f.endsWith('.batch')), []);
    // the stats lines carry the output's counters while it runs
    const stats = logLines(a, /^stats$/);
    assert.ok(stats.some((l) => l.stats.outputs.opensearch.spool_docs > 0), 'spooled documents visible in a stats line');
  });

  test('documents spooled when the agent stops are sent by the next agent', async (t) => {
    const spoolDir = path.join(tmp, 'spool-restart');
    await node.stop();
    const first = await agent(agentConfig(outputConfig(node, spoolDir)));
    const traffic = startTraffic('r');
    t.after(() => traffic.stop());
    t.after(() => void (first.child.exitCode === null && first.child.kill('SIGKILL')));
    t.after(() => node.start().catch(() => undefined)); // refused when it runs
    await eventually('some requests', async () => traffic.sent.size, (n) => n >= 20, 30_000);
    await traffic.stop();
    await first.waitFor((docs) => docs.filter((d) => /^r=\d+$/.test(d.url?.query ?? '')).length === traffic.sent.size, 15_000);
    await stopAgent(first);
    const report = logLines(first, /not all documents were delivered/)[0];
    assert.ok(report, first.stderr.slice(-5).join('\n'));
    assert.equal(report.spool_docs, traffic.sent.size);
    assert.equal(report.spool_dir, spoolDir);
    assert.ok(fs.readdirSync(spoolDir).some((f) => f.endsWith('.batch')));

    await node.start();
    const second = await agent(agentConfig(outputConfig(node, spoolDir)));
    const ids = new Set(first.docs.filter((d) => /^r=\d+$/.test(d.url?.query ?? '')).map((d) => d.event.id));
    const mine = async () => (await allDocs(node, 'packetbeat-ebpf-http')).filter((h) => /^r=\d+$/.test(h._source.url?.query ?? ''));
    await eventually('the spooled transactions', async () => (await mine()).length, (n) => n >= ids.size, 30_000);
    assert.deepEqual(new Set((await mine()).map((h) => h._id)), ids);
    await stopAgent(second);
    assert.deepEqual(fs.readdirSync(spoolDir).filter((f) => f.endsWith('.batch')), []);
  });

  test('a mapping conflict: the transactions are rejected and counted, one sample logged, not retried', async () => {
    const spoolDir = path.join(tmp, 'spool-reject');
    const a = await agent(agentConfig(outputConfig(node, spoolDir, { index: 'pbe-reject-%{[network.protocol]}' })));
    for (let i = 0; i < 5; i++) await curl(`http://127.0.0.1:${NGINX_PORT}/hello?x=${i}`);
    await a.waitFor((docs) => docs.filter((d) => /^x=\d$/.test(d.url?.query ?? '')).length === 5, 15_000);
    await eventually('the rejections counted', async () => logLines(a, /^stats$/).pop()?.stats.outputs.opensearch.rejected ?? 0, (n) => n === 5, 15_000);
    await sleep(1500); // a few more stats lines: nothing retried meanwhile
    await stopAgent(a);
    const samples = logLines(a, /rejected documents for their content/);
    assert.equal(samples.length, 1);
    assert.equal(samples[0].status, 400);
    assert.match(samples[0].error.type, /mapper_parsing_exception|document_parsing_exception/);
    const final = logLines(a, /not all documents were delivered/)[0];
    assert.ok(final, a.stderr.slice(-5).join('\n'));
    assert.equal(final.rejected, 5);
    assert.equal(final.published, 0);
    assert.equal(final.spool_docs, 0);
    const closed = logLines(a, /^outputs closed$/)[0].outputs.opensearch;
    assert.equal(closed.retried, 0);
    assert.equal(closed.failed_requests, 0);
    assert.equal(await count(node, 'pbe-reject-http'), 0);
  });
});
