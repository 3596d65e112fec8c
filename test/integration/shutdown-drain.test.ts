import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, stoppedStats, waitNoPrograms, type AgentRun } from '../helpers/agent';
import { helloLoad } from '../helpers/http-clients';
import { startNginx, type RunningServer } from '../helpers/servers';

const PORT = 18086;
/** Enough transactions to fill the ring buffer below (four events each). */
const REQUESTS = 40_000;
const LOAD_LIMIT_MS = 30_000;
const skip = kernelSkip();

describe('shutdown drains the ring buffer', { skip }, () => {
  let nginx: RunningServer;
  let agent: AgentRun;
  let requests = 0;
  let stopping: Record<string, any> | undefined;

  before(async () => {
    nginx = await startNginx(PORT);
    agent = await startAgent({ protocols: { http: { ports: [PORT] } }, stats_interval_s: 0, ring_buffer_bytes: 64 * 1024 * 1024 });
    // a stopped agent reads nothing: the kernel fills the ring buffer (and counts
    // what no longer fits); the agent is told to stop as soon as it runs again
    agent.child.kill('SIGSTOP');
    try {
      requests = await helloLoad(PORT, REQUESTS, LOAD_LIMIT_MS);
    } finally {
      agent.child.kill('SIGCONT');
      agent.child.kill('SIGINT');
    }
    stopping = await stoppedStats(agent);
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) {
      agent.child.kill('SIGCONT');
      agent.child.kill('SIGKILL');
    }
    await nginx?.stop();
  });

  test('every event the kernel wrote is read before the agent exits (not just a turn of batches)', () => {
    assert.ok(stopping, agent.stderr.join('\n'));
    // the ring buffer was full: more than the 64 MiB one holds was sent
    assert.ok(stopping.kernel.ringbufDrops > 0, JSON.stringify(stopping.kernel));
    assert.ok(stopping.kernel.events > 50_000, JSON.stringify(stopping.kernel));
    assert.equal(stopping.events, stopping.kernel.events, JSON.stringify(stopping));
    assert.ok(!agent.stderr.some((l) => l.includes('before the ring buffer was emptied')), agent.stderr.join('\n'));
  });

  test('what was read is published: a document per complete exchange, the rest counted as dropped', () => {
    const complete = agent.docs.filter((d) => d.url?.path === '/hello' && d.http?.response?.status_code === 200);
    // four events per exchange; exchanges the drops cut are reported unmatched or not at all
    assert.ok(complete.length >= 0.95 * (stopping!.kernel.events / 4), `${complete.length} documents for ${stopping!.kernel.events} events`);
    assert.ok(complete.length < requests, `${complete.length} documents for ${requests} requests`);
  });

  test('nothing stays loaded', async () => {
    assert.deepEqual(await waitNoPrograms(), []);
  });
});
