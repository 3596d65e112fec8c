import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { startNodeServer, type RunningServer } from '../helpers/servers';

const HTTP_PORT = 18555; // configured for no protocol
const OTHER_PORT = 18556; // speaks no protocol of ours
const skip = kernelSkip();

/** A line-echo server: a TCP protocol that is none of HTTP, PostgreSQL, MySQL, Redis. */
function startEcho(port: number): Promise<net.Server> {
  const server = net.createServer((s) => s.on('data', (d) => s.write(`echo ${d.toString()}`)));
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

function talk(port: number, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, async () => {
      for (const l of lines) {
        s.write(`${l}\n`);
        await new Promise((r) => setTimeout(r, 20));
      }
      s.end();
    });
    s.resume();
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

describe('protocols recognised by content on unconfigured ports', { skip }, () => {
  let server: RunningServer;
  let echo: net.Server;
  let agent: AgentRun;
  let stopping: Record<string, any> = {};

  before(async () => {
    server = await startNodeServer(HTTP_PORT);
    echo = await startEcho(OTHER_PORT);
    // only the default ports are configured: 18555 and 18556 are unknown to the agent
    agent = await startAgent({ stats_interval_s: 0, join_window_ms: 300 });
    spawnSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${HTTP_PORT}/hello`, '-o', '/dev/null', `http://127.0.0.1:${HTTP_PORT}/missing`]);
    await talk(OTHER_PORT, ['hello there', 'GET is not a request line here', 'bye']);
    await agent.waitFor((docs) => docs.filter((d) => d.destination?.port === HTTP_PORT).length >= 2);
    agent.child.kill('SIGINT');
    await agent.exited;
    const line = agent.stderr.find((l) => l.includes('"stopping"'));
    stopping = line ? JSON.parse(line).stats : {};
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await server?.stop();
    echo?.close();
  });

  test('HTTP on an unconfigured port becomes transactions with both processes', () => {
    const docs = agent.docs.filter((d) => d.destination?.port === HTTP_PORT);
    assert.deepEqual(docs.map((d) => `${d.query} ${d.http.response.status_code}`).sort(), ['GET /hello 200', 'GET /missing 404']);
    for (const d of docs) {
      assert.equal(d.source.process.name, 'curl');
      assert.equal(d.destination.process.pid, server.pid);
      assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
      assert.equal(d.error, undefined, 'no bytes lost while the protocol was being decided');
    }
  });

  test('a connection speaking none of our protocols produces nothing and is ignored', () => {
    assert.equal(agent.docs.filter((d) => d.destination?.port === OTHER_PORT).length, 0);
    assert.ok(stopping.inferred >= 1, JSON.stringify(stopping)); // the client decided; its server took the answer
    assert.ok(stopping.infer_ignored >= 2, 'both ends of the echo connection are ignored');
    assert.equal(stopping.parse_errors, 0);
  });
});
