/**
 * Under SCHED_IDLE a drain gives the scheduler a turn (sched_yield) after each
 * ~100 µs of work (src/capture/slices.ts): a long drain is no long run in user
 * space that a traced application waits behind. A stopped agent finds a burst of
 * requests in its ring buffer when it runs again: one long drain. Under
 * sched_idle: true it yields during it (counted in the stats line: drain_yields);
 * at normal priority (sched_idle: false) it does not. Every request is reported
 * either way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, stopAgent, type AgentRun } from '../helpers/agent';
import { helloLoad } from '../helpers/http-clients';
import { startNginx, type RunningServer } from '../helpers/servers';

const PORT = 18094;
const REQUESTS = 2000;
const LOAD_LIMIT_MS = 20_000;
const skip = kernelSkip();

interface Burst {
  requests: number;
  reported: number;
  stats: Record<string, any> | undefined;
}

/** A burst of requests while the agent is stopped, then all of it drained at once; the agent's last stats line. */
async function burst(nginxPort: number, schedIdle: boolean): Promise<Burst> {
  const agent: AgentRun = await startAgent({
    protocols: { http: { ports: [nginxPort] } },
    stats_interval_s: 0,
    sched_idle: schedIdle,
    ring_buffer_bytes: 64 * 1024 * 1024,
  });
  let requests = 0;
  try {
    agent.child.kill('SIGSTOP');
    try {
      requests = await helloLoad(nginxPort, REQUESTS, LOAD_LIMIT_MS);
    } finally {
      agent.child.kill('SIGCONT');
    }
    const hello = (docs: Array<Record<string, any>>) => docs.filter((d) => d.url?.path === '/hello' && d.destination?.port === nginxPort).length;
    await agent.waitFor((docs) => hello(docs) >= requests, 20_000);
    const stats = await stopAgent(agent);
    return { requests, reported: hello(agent.docs), stats };
  } finally {
    if (agent.child.exitCode === null) {
      agent.child.kill('SIGCONT');
      agent.child.kill('SIGKILL');
    }
  }
}

describe('a long drain yields the CPU under SCHED_IDLE', { skip }, () => {
  let nginx: RunningServer | undefined;

  before(async () => {
    nginx = await startNginx(PORT);
  });

  after(async () => {
    await nginx?.stop();
  });

  test('sched_idle: true: yields during the drain, every request reported', async (t) => {
    const b = await burst(PORT, true);
    assert.equal(b.requests, REQUESTS);
    assert.equal(b.reported, b.requests);
    assert.ok(b.stats, 'no stats line at exit');
    t.diagnostic(`${b.stats.drain_yields} yields over ${b.stats.events} events`);
    // ~8,000 events of ~5 µs or more each: 40 ms of work or more, a yield every 0.1 ms of it;
    // the clock is read every 4th event, so never more than events / 4
    assert.ok(b.stats.drain_yields >= 20, JSON.stringify(b.stats));
    assert.ok(b.stats.drain_yields <= b.stats.events / 4, JSON.stringify(b.stats));
  });

  test('sched_idle: false: no yield, every request reported', async () => {
    const b = await burst(PORT, false);
    assert.equal(b.requests, REQUESTS);
    assert.equal(b.reported, b.requests);
    assert.ok(b.stats, 'no stats line at exit');
    assert.equal(b.stats.drain_yields, 0, JSON.stringify(b.stats));
  });
});
