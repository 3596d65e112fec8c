import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, waitNoPrograms, type AgentRun } from '../helpers/agent';
import { byQuery, driveHttpTraffic, type ClientRun } from '../helpers/http-clients';
import { BIG_FILE_BYTES, startNginx, startNodeServer, type RunningServer } from '../helpers/servers';

const NGINX_PORT = 18080;
const NODE_PORT = 18081;
const skip = kernelSkip();

describe('HTTP transactions from the kernel (syscall mode)', { skip }, () => {
  let nginx: RunningServer;
  let node: RunningServer;
  let agent: AgentRun;
  let clients: Record<string, ClientRun> = {};
  let fetchNs = 0;

  before(async () => {
    nginx = await startNginx(NGINX_PORT);
    node = await startNodeServer(NODE_PORT);
    agent = await startAgent({
      protocols: { http: { ports: [NGINX_PORT, NODE_PORT] } },
      transaction_timeout_ms: 1500,
      join_window_ms: 300,
      stats_interval_s: 0,
    });
    ({ clients, fetchNs } = await driveHttpTraffic(agent, NGINX_PORT, NODE_PORT));
    agent.child.kill('SIGINT');
    const exit = await agent.exited;
    assert.equal(exit.code, 0, `agent exit: ${JSON.stringify(exit)}\n${agent.stderr.join('\n')}`);
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await nginx?.stop();
    await node?.stop();
  });

  test('curl → nginx GET /hello is one document with both processes', () => {
    const docs = byQuery(agent.docs, NGINX_PORT, 'GET /hello').filter((d) => d.url.query === undefined);
    assert.equal(docs.length, 1, JSON.stringify(docs, null, 1));
    const d = docs[0];
    assert.equal(d.type, 'http');
    assert.equal(d.status, 'OK');
    assert.equal(d.method, 'GET');
    assert.equal(d.http.response.status_code, 200);
    assert.equal(d.http.response.status_phrase, 'ok');
    assert.equal(d.http.version, '1.1');
    assert.equal(d.url.full, `http://127.0.0.1:${NGINX_PORT}/hello`);
    assert.equal(d.http.response.body.bytes, 'hello from nginx\n'.length);
    assert.equal(d.source.ip, '127.0.0.1');
    assert.equal(d.destination.port, NGINX_PORT);
    assert.equal(d.network.transport, 'tcp');
    assert.equal(d.network.type, 'ipv4');
    assert.match(d.network.community_id, /^1:[A-Za-z0-9+/]{27}=$/);
    assert.equal(d.source.process.pid, clients.hello.pid);
    assert.equal(d.source.process.name, 'curl');
    // curl is gone before /proc can be read: path and argv come from the exec event
    assert.equal(d.source.process.executable, '/usr/bin/curl');
    assert.ok(d.source.process.args.includes(`http://127.0.0.1:${NGINX_PORT}/hello`), JSON.stringify(d.source.process.args));
    assert.equal(d.destination.process.pid, nginx.pid);
    assert.equal(d.destination.process.name, 'nginx');
    assert.equal(d.destination.process.executable, '/usr/sbin/nginx');
    assert.equal(d.process.pid, nginx.pid);
    assert.equal(d.source.bytes, d.http.request.bytes);
    assert.equal(d.destination.bytes, d.http.response.bytes);
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
    assert.ok(d.event.duration > 0 && d.event.duration <= clients.hello.elapsedNs, `duration ${d.event.duration} vs curl ${clients.hello.elapsedNs}`);
    assert.ok(d.packetbeat_ebpf.server_duration > 0 && d.packetbeat_ebpf.server_duration <= d.event.duration);
  });

  test('keep-alive: three requests on one connection, three documents in order', () => {
    const docs = agent.docs.filter((d) => d.destination?.port === NGINX_PORT && /^n=\d$/.test(d.url?.query ?? ''));
    assert.deepEqual(docs.map((d) => d.url.query), ['n=1', 'n=2', 'n=3']);
    const ports = new Set(docs.map((d) => d.source.port));
    assert.equal(ports.size, 1, 'all three on one connection');
    for (const d of docs) {
      assert.equal(d.source.process.pid, clients.keepalive.pid);
      assert.equal(d.destination.process.pid, nginx.pid);
      assert.equal(d.http.response.status_code, 200);
    }
  });

  test('1 MiB responses (sendfile from nginx, writes from node) are complete transactions', () => {
    const [fromNginx] = byQuery(agent.docs, NGINX_PORT, 'GET /big.bin');
    assert.ok(fromNginx, 'nginx /big.bin transaction');
    assert.equal(fromNginx.http.response.status_code, 200);
    assert.equal(fromNginx.http.response.body.bytes, BIG_FILE_BYTES);
    assert.ok(fromNginx.http.response.bytes > BIG_FILE_BYTES);
    assert.equal(fromNginx.source.process.pid, clients.big.pid);
    const [fromNode] = byQuery(agent.docs, NODE_PORT, 'GET /big');
    assert.ok(fromNode, 'node /big transaction');
    assert.equal(fromNode.http.response.body.bytes, BIG_FILE_BYTES);
    assert.equal(fromNode.destination.process.pid, node.pid);
    assert.equal(fromNode.source.process.pid, clients.nodeBig.pid);
  });

  test('404 is an Error transaction', () => {
    const [d] = byQuery(agent.docs, NGINX_PORT, 'GET /missing');
    assert.ok(d);
    assert.equal(d.status, 'Error');
    assert.equal(d.http.response.status_code, 404);
    assert.equal(d.event.outcome, 'failure');
    assert.equal(clients.missing.stdout.trim(), '404');
  });

  test('a request that is never answered is reported, not dropped', () => {
    const docs = byQuery(agent.docs, NODE_PORT, 'GET /never');
    assert.equal(docs.length, 1, JSON.stringify(docs));
    const [d] = docs;
    assert.equal(d.status, 'Error');
    assert.equal(d.http.response, undefined);
    assert.equal(d.event.outcome, 'unknown');
    assert.match(JSON.stringify(d.error.message), /Unmatched request/);
    assert.equal(d.source.process.pid, clients.never.pid);
    assert.equal(d.destination.process.pid, node.pid);
  });

  test("Node's fetch → Node server: both node processes", () => {
    const [d] = byQuery(agent.docs, NODE_PORT, 'GET /hello');
    assert.ok(d);
    assert.equal(d.source.process.pid, process.pid);
    assert.equal(d.source.process.name, 'node');
    assert.equal(d.destination.process.pid, node.pid);
    assert.equal(d.http.response.status_code, 200);
    assert.ok(d.event.duration <= fetchNs);
  });

  test("the agent's own process never appears", () => {
    const agentPid = agent.child.pid;
    for (const d of agent.docs) {
      assert.notEqual(d.source?.process?.pid, agentPid);
      assert.notEqual(d.destination?.process?.pid, agentPid);
    }
  });

  test('after SIGINT none of its programs stay loaded', async () => {
    assert.deepEqual(await waitNoPrograms(), []);
  });
});

describe('detaching on every way out', { skip }, () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`${signal}: no program stays loaded`, async () => {
      const agent = await startAgent({ stats_interval_s: 0 });
      agent.child.kill(signal);
      const exit = await agent.exited;
      if (signal === 'SIGTERM') assert.equal(exit.code, 0, agent.stderr.join('\n'));
      assert.deepEqual(await waitNoPrograms(), []);
    });
  }
});
