/**
 * Events that only trickle in are drained less often: below 1,600 records a
 * second the next drain waits as long as ~32 take to come (up to
 * drain_interval_ms), instead of waking the agent every drain_min_interval_ms
 * for a couple of them (addon/ring-drain.h, RingDrain::NextInterval). Counted as the
 * agent's main thread's wake-ups (its voluntary context switches) while one
 * client sends a request every 10 ms; nothing is lost meanwhile.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { getHello } from '../helpers/http-clients';
import { startNginx, type RunningServer } from '../helpers/servers';
import { threadStates } from '../helpers/threads';

const PORT = 18092;
/** One request every 10 ms for 2 s: ~400 events/s, a dozen in each 5 ms drain at most. */
const REQUESTS = 200;
const GAP_MS = 10;
const skip = kernelSkip();

/** GET /hello every `gapMs` on one keep-alive connection, `n` in all; resolves with those answered. */
async function trickle(port: number, n: number, gapMs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let answered = 0;
  try {
    for (let i = 0; i < n; i++) {
      const sent = Date.now();
      await getHello(port, agent);
      answered++;
      await new Promise((r) => setTimeout(r, Math.max(0, gapMs - (Date.now() - sent))));
    }
  } finally {
    agent.destroy();
  }
  return answered;
}

describe('drains space out while events only trickle in', { skip }, () => {
  let nginx: RunningServer;
  let agent: AgentRun;
  let answered = 0;
  let wakeUps = NaN;
  let seconds = NaN;

  before(async () => {
    nginx = await startNginx(PORT);
    agent = await startAgent({ protocols: { http: { ports: [PORT] } }, stats_interval_s: 0 });
    const pid = agent.child.pid!;
    // the main thread's tid is the process id
    const sleeps = () => threadStates(pid).get(pid)?.voluntarySwitches ?? NaN;
    await new Promise((r) => setTimeout(r, 300));
    const before = sleeps();
    const from = Date.now();
    answered = await trickle(PORT, REQUESTS, GAP_MS);
    wakeUps = sleeps() - before;
    seconds = (Date.now() - from) / 1000;
    await agent.waitFor((docs) => docs.filter((d) => d.url?.path === '/hello').length >= answered, 5000);
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) {
      agent.child.kill('SIGINT');
      await agent.exited;
    }
    await nginx?.stop();
  });

  test('the main thread woke well under once per 5 ms (drain_min_interval_ms) meanwhile', (t) => {
    assert.equal(answered, REQUESTS);
    t.diagnostic(`${wakeUps} wake-ups in ${seconds.toFixed(2)} s (${(wakeUps / seconds).toFixed(0)}/s)`);
    // a drain every 5 ms alone is 200 a second; spaced, a drain would wait for ~32
    // records, 80 ms at this rate, capped at drain_interval_ms (50 ms: 20 a second),
    // beside the pipeline's tick (10 a second while it holds requests)
    assert.ok(wakeUps / seconds < 100, `${wakeUps} wake-ups in ${seconds.toFixed(2)} s`);
  });

  test('every request was reported, each once', () => {
    const hello = agent.docs.filter((d) => d.url?.path === '/hello' && d.destination?.port === PORT);
    assert.equal(hello.length, REQUESTS);
    assert.equal(new Set(hello.map((d) => d.event?.id)).size, REQUESTS);
    assert.ok(hello.every((d) => d.http?.response?.status_code === 200 && d.source?.process?.pid === process.pid));
  });
});
