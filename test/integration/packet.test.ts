import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { BIN, startAgent, waitNoPrograms, type AgentRun } from '../helpers/agent';
import { createVethNamespace, packetSkip, sendHostileFrames, waitForEndpoint, writeServerScript, type VethNamespace } from '../helpers/packet';
import { byQuery, curl, driveHttpTraffic, type ClientRun, type Doc } from '../helpers/http-clients';
import { BIG_FILE_BYTES, startNginx, startNodeServer, type RunningServer } from '../helpers/servers';

const NGINX_PORT = 18380;
const NODE_PORT = 18381;
const NS_PORT = 18382;
const skip = packetSkip();

/** The agent's last stats line (written when it stops). */
function finalStats(agent: AgentRun): Record<string, any> {
  const line = [...agent.stderr].reverse().find((l) => l.includes('"stopping"'));
  assert.ok(line, `no stats line:\n${agent.stderr.join('\n')}`);
  return JSON.parse(line).stats;
}

/**
 * The client end where it was attributed: always curl's own process. A curl
 * that is gone before the agent looks (a millisecond exchange) has none; then
 * the document is the server's view alone.
 */
function assertClient(d: Doc, client: ClientRun): void {
  if (d.source.process) {
    assert.equal(d.source.process.pid, client.pid);
    assert.equal(d.source.process.name, 'curl');
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
  } else {
    assert.deepEqual(d.packetbeat_ebpf.views, ['server']);
  }
}

describe('HTTP transactions from packets (packet mode, loopback)', { skip }, () => {
  let nginx: RunningServer;
  let node: RunningServer;
  let agent: AgentRun;
  let clients: Record<string, ClientRun> = {};
  let fetchNs = 0;
  let fetchPort = 0;

  before(async () => {
    nginx = await startNginx(NGINX_PORT);
    node = await startNodeServer(NODE_PORT);
    agent = await startAgent({
      mode: 'packet',
      protocols: { http: { ports: [NGINX_PORT, NODE_PORT] } },
      transaction_timeout_ms: 1500,
      join_window_ms: 300,
      stats_interval_s: 0,
    });
    ({ clients, fetchNs } = await driveHttpTraffic(agent, NGINX_PORT, NODE_PORT));
    fetchPort = agent.docs.find((d) => d.url?.path === '/hello' && d.destination?.port === NODE_PORT)!.source.port;
    // lies about headers and garbage to a captured port, then the agent must still work
    sendHostileFrames(NODE_PORT, 400, 7);
    clients.after = await curl(['--max-time', '2', `http://127.0.0.1:${NGINX_PORT}/hello?after=hostile`]);
    await agent.waitFor((docs) => docs.some((d) => d.url?.query === 'after=hostile'));
    agent.child.kill('SIGINT');
    const exit = await agent.exited;
    assert.equal(exit.code, 0, `agent exit: ${JSON.stringify(exit)}\n${agent.stderr.join('\n')}`);
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await nginx?.stop();
    await node?.stop();
  });

  test('curl → nginx GET /hello is one document, the serving process named', () => {
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
    assert.equal(d.destination.process.pid, nginx.pid);
    assert.equal(d.destination.process.name, 'nginx');
    assert.equal(d.destination.process.executable, '/usr/sbin/nginx');
    assert.equal(d.process.pid, nginx.pid);
    assertClient(d, clients.hello);
    assert.equal(d.source.bytes, d.http.request.bytes);
    assert.equal(d.destination.bytes, d.http.response.bytes);
    assert.equal(d.packetbeat_ebpf.unattributed, undefined);
    assert.ok(d.event.duration > 0 && d.event.duration <= clients.hello.elapsedNs, `duration ${d.event.duration} vs curl ${clients.hello.elapsedNs}`);
    assert.ok(d.packetbeat_ebpf.server_duration > 0 && d.packetbeat_ebpf.server_duration <= d.event.duration);
  });

  test('keep-alive: three requests on one connection, three documents in order, one client', () => {
    const docs = agent.docs.filter((d) => d.destination?.port === NGINX_PORT && /^n=\d$/.test(d.url?.query ?? ''));
    assert.deepEqual(docs.map((d) => d.url.query), ['n=1', 'n=2', 'n=3']);
    assert.equal(new Set(docs.map((d) => d.source.port)).size, 1, 'all three on one connection');
    assert.equal(new Set(docs.map((d) => d.source.process?.pid)).size, 1, 'one attribution per connection');
    for (const d of docs) {
      assertClient(d, clients.keepalive);
      assert.equal(d.destination.process.pid, nginx.pid);
      assert.equal(d.http.response.status_code, 200);
      assert.ok(d.event.duration > 0 && d.event.duration <= clients.keepalive.elapsedNs);
    }
  });

  test('1 MiB responses (sendfile from nginx, chunked from node) are complete transactions', () => {
    const [fromNginx] = byQuery(agent.docs, NGINX_PORT, 'GET /big.bin');
    assert.ok(fromNginx, 'nginx /big.bin transaction');
    assert.equal(fromNginx.http.response.status_code, 200);
    assert.equal(fromNginx.http.response.body.bytes, BIG_FILE_BYTES);
    assert.ok(fromNginx.http.response.bytes > BIG_FILE_BYTES);
    assert.equal(fromNginx.destination.process.pid, nginx.pid);
    assertClient(fromNginx, clients.big);
    assert.equal(fromNginx.error, undefined);
    const [fromNode] = byQuery(agent.docs, NODE_PORT, 'GET /big');
    assert.ok(fromNode, 'node /big transaction');
    assert.equal(fromNode.http.response.body.bytes, BIG_FILE_BYTES);
    assert.equal(fromNode.destination.process.pid, node.pid);
    assertClient(fromNode, clients.nodeBig);
    assert.equal(fromNode.error, undefined);
  });

  test('404 is an Error transaction', () => {
    const [d] = byQuery(agent.docs, NGINX_PORT, 'GET /missing');
    assert.ok(d);
    assert.equal(d.status, 'Error');
    assert.equal(d.http.response.status_code, 404);
    assert.equal(d.event.outcome, 'failure');
    assert.equal(clients.missing.stdout.trim(), '404');
    assert.equal(d.destination.process.pid, nginx.pid);
  });

  test('a request that is never answered is reported, and its waiting client is named', () => {
    const docs = byQuery(agent.docs, NODE_PORT, 'GET /never');
    assert.equal(docs.length, 1, JSON.stringify(docs));
    const [d] = docs;
    assert.equal(d.status, 'Error');
    assert.equal(d.http.response, undefined);
    assert.equal(d.event.outcome, 'unknown');
    assert.match(JSON.stringify(d.error.message), /Unmatched request/);
    // curl waits a second for the answer: its socket is there to be found
    const s = finalStats(agent).capture;
    const why = JSON.stringify({ attribution: s.attribution, attribution_skipped: s.attribution_skipped, views: d.packetbeat_ebpf.views, curl: clients.never });
    assert.ok(d.source.process, `client not named: ${why}`);
    assert.equal(d.source.process.pid, clients.never.pid);
    assert.equal(d.source.process.name, 'curl');
    assert.equal(d.destination.process.pid, node.pid);
  });

  test("Node's fetch → Node server: both node processes (a client that keeps its connection)", () => {
    const [d] = byQuery(agent.docs, NODE_PORT, 'GET /hello');
    assert.ok(d);
    assert.equal(d.source.process.pid, process.pid);
    assert.equal(d.source.process.name, 'node');
    assert.equal(d.destination.process.pid, node.pid);
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
    assert.equal(d.http.response.status_code, 200);
    assert.ok(d.event.duration > 0 && d.event.duration <= fetchNs);
  });

  test('hostile frames to a captured port: rejected in the kernel or in user space, never a crash', () => {
    const s = finalStats(agent);
    const k = s.capture.packet;
    assert.ok(k.malformed > 0, `malformed: ${JSON.stringify(k)}`);
    assert.ok(k.fragments > 0, `fragments: ${JSON.stringify(k)}`);
    assert.equal(s.internal_errors, 0);
    assert.equal(k.ringbufDrops, 0);
    const [d] = agent.docs.filter((x) => x.url?.query === 'after=hostile');
    assert.equal(d.http.response.status_code, 200);
    assert.equal(d.destination.process.pid, nginx.pid);
    // garbage flows are never taken for the real ones
    for (const x of agent.docs.filter((y) => y.destination?.port === NODE_PORT && y.source.port !== fetchPort)) {
      assert.notEqual(x.source.process?.pid, process.pid);
    }
  });

  test('loopback packets are counted once, and nothing was lost', () => {
    const k = finalStats(agent).capture.packet;
    assert.ok(k.loopbackDups > 0);
    assert.ok(k.packets > 0 && k.truncated > 0, JSON.stringify(k));
    assert.equal(k.ringbufDrops, 0);
  });

  test("the agent's own process never appears", (t) => {
    const curls = agent.docs.filter((d) => d.user_agent?.original?.startsWith('curl'));
    t.diagnostic(`curl clients named in ${curls.filter((d) => d.source.process).length} of ${curls.length} documents`);
    t.diagnostic(`attribution: ${JSON.stringify(finalStats(agent).capture.attribution)}`);
    const agentPid = agent.child.pid;
    for (const d of agent.docs) {
      assert.notEqual(d.source?.process?.pid, agentPid);
      assert.notEqual(d.destination?.process?.pid, agentPid);
    }
  });

  test('after SIGINT its socket filter is gone', async () => {
    assert.deepEqual(await waitNoPrograms(), []);
  });
});

describe('packet mode across network namespaces (veth)', { skip }, () => {
  let ns: VethNamespace;
  let server: ChildProcess;
  let serverDir: string;
  let attributed: AgentRun;
  let wire: AgentRun;
  let clients: Record<string, ClientRun> = {};

  before(async () => {
    ns = createVethNamespace(process.pid % 200);
    const { script, dir } = writeServerScript(ns.nsIp, NS_PORT);
    serverDir = dir;
    server = ns.spawn(process.execPath, [script]);
    await waitForEndpoint(ns.nsIp, NS_PORT);
    const config = { mode: 'packet', protocols: { http: { ports: [NS_PORT] } }, transaction_timeout_ms: 1500, join_window_ms: 300, stats_interval_s: 0 };
    // one agent names processes in every namespace, one names none; both on the host end only
    attributed = await startAgent({ ...config, packet: { interfaces: [ns.hostIf] } });
    wire = await startAgent({ ...config, packet: { interfaces: [ns.hostIf], process_attribution: false } });
    clients.slow = await curl([`http://${ns.nsIp}:${NS_PORT}/slow`]);
    clients.hello = await curl([`http://${ns.nsIp}:${NS_PORT}/hello`]);
    for (const a of [attributed, wire]) {
      await a.waitFor((docs) => docs.filter((d) => d.destination?.port === NS_PORT).length >= 2);
      a.child.kill('SIGINT');
      assert.equal((await a.exited).code, 0, a.stderr.join('\n'));
    }
  });

  after(async () => {
    for (const a of [attributed, wire]) if (a && a.child.exitCode === null) a.child.kill('SIGKILL');
    server?.kill('SIGKILL');
    ns?.remove();
    if (serverDir) fs.rmSync(serverDir, { recursive: true, force: true });
  });

  test("the server in another namespace is named from that namespace's sockets", () => {
    for (const path of ['/slow', '/hello']) {
      const [d] = attributed.docs.filter((x) => x.url?.path === path);
      assert.ok(d, `${path}: ${JSON.stringify(attributed.docs)}`);
      assert.equal(d.http.response.status_code, 200);
      assert.equal(d.source.ip, ns.hostIp);
      assert.equal(d.destination.ip, ns.nsIp);
      assert.equal(d.destination.process.pid, server.pid);
      assert.equal(d.destination.process.name, 'node');
    }
    const stats = finalStats(attributed).capture.attribution;
    assert.ok(stats.namespaces >= 2, JSON.stringify(stats));
  });

  test('a client that waits for its answer is named too; durations within what it measured', () => {
    const [d] = attributed.docs.filter((x) => x.url?.path === '/slow');
    assert.equal(d.source.process.pid, clients.slow.pid);
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
    assert.ok(d.event.duration >= 300e6 && d.event.duration <= clients.slow.elapsedNs, `${d.event.duration} vs ${clients.slow.elapsedNs}`);
  });

  test('without attribution: the same transactions, seen on the wire, flagged unattributed', () => {
    const docs = wire.docs.filter((d) => d.destination?.port === NS_PORT);
    assert.deepEqual(docs.map((d) => d.url.path).sort(), ['/hello', '/slow']);
    for (const d of docs) {
      assert.deepEqual(d.packetbeat_ebpf.views, ['wire']);
      assert.equal(d.packetbeat_ebpf.unattributed, true);
      assert.equal(d.process, undefined);
      assert.equal(d.source.process, undefined);
      assert.equal(d.destination.process, undefined);
      assert.equal(d.http.response.status_code, 200);
    }
  });
});

describe('packet mode: detaching on every way out, and no BTF needed', { skip }, () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`${signal}: the packet socket dies with the process, its filter with it`, async () => {
      const agent = await startAgent({ mode: 'packet', stats_interval_s: 0 });
      agent.child.kill(signal);
      const exit = await agent.exited;
      if (signal === 'SIGTERM') assert.equal(exit.code, 0, agent.stderr.join('\n'));
      assert.deepEqual(await waitNoPrograms(), []);
    });
  }

  test('an unknown interface is a clear error, and nothing stays loaded', async () => {
    await assert.rejects(startAgent({ mode: 'packet', packet: { interfaces: ['pbe-nosuch0'] } }), /no network interface "pbe-nosuch0"/);
    assert.deepEqual(await waitNoPrograms(), []);
  });

  test('it loads and captures with the kernel BTF hidden (a private mount namespace)', async () => {
    const node = await startNodeServer(NODE_PORT);
    const dir = fs.mkdtempSync('/tmp/pbe-nobtf-');
    try {
      const cfg = `${dir}/config.yml`;
      fs.writeFileSync(cfg, JSON.stringify({ mode: 'packet', protocols: { http: { ports: [NODE_PORT] } }, stats_interval_s: 0, join_window_ms: 100 }));
      const script = `mount --bind /dev/null /sys/kernel/btf/vmlinux && exec "${process.execPath}" "${BIN}" run -c "${cfg}"`;
      const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const deadline = Date.now() + 10_000;
      while (!stderr.includes('"capturing"') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      assert.ok(stderr.includes('"capturing"'), stderr);
      const res = await fetch(`http://127.0.0.1:${NODE_PORT}/hello`);
      assert.equal(await res.text(), 'hello from node\n');
      while (!stdout.includes('"GET /hello"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      const doc = JSON.parse(stdout.trim().split('\n')[0]);
      assert.equal(doc.http.response.status_code, 200);
      assert.equal(doc.destination.process.pid, node.pid);
    } finally {
      await node.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(await waitNoPrograms(), []);
  });
});
