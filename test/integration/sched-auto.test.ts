import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { kernelSkip, startAgent, stopAgent, type AgentRun } from '../helpers/agent';
import { helloLoad } from '../helpers/http-clients';
import { startNginx, type RunningServer } from '../helpers/servers';
import { threadStates } from '../helpers/threads';

const PORT = 18087;
const BUDGET_PORT = 18088;
/** A small ring buffer (4 MiB: normal priority past 512 KiB), filled many times over by the load. */
const RING_BYTES = 4 * 1024 * 1024;
const REQUESTS = 20_000;
const LOAD_LIMIT_MS = 30_000;
const IDLE_LOOK_MS = 2000;
const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const skip = kernelSkip();

/** Scheduling policy of each thread of `pid`. */
function policies(pid: number): Map<number, number> {
  return new Map([...threadStates(pid)].map(([tid, t]) => [tid, t.policy]));
}

function lastStats(agent: AgentRun): Record<string, any> | undefined {
  for (let i = agent.stderr.length - 1; i >= 0; i--) {
    const line = JSON.parse(agent.stderr[i]) as Record<string, any>;
    if (line.stats) return line.stats;
  }
  return undefined;
}

/** CPU seconds the process has used (utime + stime, clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Every thread of the agent on CPU 0 with `loops` busy loops of normal priority
 * (threads of one process, for at most `seconds`): an agent under SCHED_IDLE gets
 * nothing there, so only its watcher can raise it; at normal priority it gets a
 * share of CPU 0 beside them.
 */
function crowdCpu0(pid: number, seconds: number, loops = 1): ChildProcess {
  const pin = spawnSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { encoding: 'utf8' });
  assert.equal(pin.status, 0, pin.stderr);
  const loop = `const end = Date.now() + ${seconds * 1000}; while (Date.now() < end);`;
  const script = `const { Worker } = require('node:worker_threads'); for (let i = 1; i < ${loops}; i++) new Worker(${JSON.stringify(loop)}, { eval: true }); ${loop}`;
  return spawn('taskset', ['-c', '0', process.execPath, '-e', script], { stdio: 'ignore' });
}

async function cleanUp(hog: ChildProcess | undefined, agent: AgentRun | undefined, nginx: RunningServer | undefined): Promise<void> {
  hog?.kill('SIGKILL');
  if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
  await nginx?.stop();
}

async function until(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('sched_idle auto: idle while the agent keeps up, normal priority while it falls behind', { skip }, () => {
  let nginx: RunningServer;
  let agent: AgentRun;
  let hog: ChildProcess | undefined;
  let requests = 0;
  let atStart = new Map<number, number>();
  /** the watcher's wake-ups over IDLE_LOOK_MS with no traffic */
  let idleLooks = NaN;
  let duringLoad: Record<string, any> | undefined;
  let afterLoad = new Map<number, number>();
  let stopping: Record<string, any> | undefined;

  before(async () => {
    nginx = await startNginx(PORT);
    // a budget far above what this load needs (the next suite spends it)
    agent = await startAgent({ protocols: { http: { ports: [PORT] } }, stats_interval_s: 1, ring_buffer_bytes: RING_BYTES, sched_idle: 'auto', sched_boost_burst_s: 60 });
    const pid = agent.child.pid!;
    await new Promise((r) => setTimeout(r, 300));
    atStart = policies(pid);
    const watcher = [...atStart].find(([, policy]) => policy === SCHED_OTHER)?.[0];
    if (watcher !== undefined) {
      const sleeps = () => threadStates(pid).get(watcher)?.voluntarySwitches ?? NaN;
      const before = sleeps();
      await new Promise((r) => setTimeout(r, IDLE_LOOK_MS));
      idleLooks = sleeps() - before;
    }
    hog = crowdCpu0(pid, 40);
    try {
      requests = await helloLoad(PORT, REQUESTS, LOAD_LIMIT_MS);
      // the load is over: the stats line of the second after it
      const lines = agent.stderr.length;
      await until('a stats line after the load', () => agent.stderr.length > lines && lastStats(agent) !== undefined, 5000);
      duringLoad = lastStats(agent);
    } finally {
      hog.kill('SIGKILL');
    }
    // caught up and 5 s under 1/64 of the ring: idle again
    await until('the agent is idle again', () => lastStats(agent)?.sched?.policy === 'idle', 20_000);
    afterLoad = policies(pid);
    stopping = await stopAgent(agent);
  });

  after(() => cleanUp(hog, agent, nginx));

  test('at start every thread is under SCHED_IDLE but the watcher', () => {
    const values = [...atStart.values()];
    assert.ok(values.length >= 3, JSON.stringify([...atStart]));
    assert.equal(values.filter((p) => p === SCHED_OTHER).length, 1, JSON.stringify([...atStart]));
    assert.equal(values.filter((p) => p === SCHED_IDLE).length, values.length - 1, JSON.stringify([...atStart]));
  });

  test('with nothing to drain the watcher looks at the ring buffer less often (up to 80 ms apart, not every 10 ms)', (t) => {
    t.diagnostic(`${idleLooks} wake-ups of the watcher in ${IDLE_LOOK_MS} ms`);
    // every 80 ms is 25 looks in 2 s, every 10 ms 200; data now and then (other processes' execs) brings it back to 10 ms for a while
    assert.ok(idleLooks >= 5 && idleLooks <= 80, `${idleLooks} wake-ups in ${IDLE_LOOK_MS} ms`);
  });

  test('starved while the ring buffer filled, it went back to normal priority and lost nothing', () => {
    assert.ok(stopping, agent.stderr.join('\n'));
    assert.ok(duringLoad, agent.stderr.join('\n'));
    assert.ok(duringLoad.sched.boosts >= 1, JSON.stringify(duringLoad.sched));
    assert.ok(stopping.sched.normal_ms > 0, JSON.stringify(stopping.sched));
    // more events than the ring buffer holds at once went through it: it would have overflowed
    assert.ok(stopping.kernel.events * 300 > RING_BYTES, JSON.stringify(stopping.kernel));
    assert.equal(stopping.kernel.ringbufDrops, 0, JSON.stringify(stopping.kernel));
    const hello = agent.docs.filter((d) => d.method === 'GET' && d.url?.path === '/hello' && d.http?.response?.status_code === 200);
    assert.equal(hello.length, requests, `${hello.length} documents for ${requests} requests`);
  });

  test('once caught up it is idle again, the watcher excepted', () => {
    const values = [...afterLoad.values()];
    assert.equal(values.filter((p) => p === SCHED_OTHER).length, 1, JSON.stringify([...afterLoad]));
    assert.equal(lastStats(agent)?.sched?.policy, 'idle');
  });
});

describe('sched_idle auto: a host saturated past the budget gets its CPU back, and the loss is counted', { skip }, () => {
  /** 0.2 CPU-seconds at normal priority in one go, refilled at 2% of a CPU. */
  const BURST_S = 0.2;
  const SHARE = 0.02;
  /** Long enough (5-10 s here) for a quarter of the budget to come back while the host is saturated. */
  const LOAD_REQUESTS = 80_000;
  let nginx: RunningServer;
  let agent: AgentRun;
  let hog: ChildProcess | undefined;
  let requests = 0;
  let loadSeconds = 0;
  let loadCpu = 0;
  let stopping: Record<string, any> | undefined;
  /** From before the agent started to after it stopped: longer than its life. */
  let lifeMs = 0;

  before(async () => {
    nginx = await startNginx(BUDGET_PORT);
    const born = Date.now();
    agent = await startAgent({
      protocols: { http: { ports: [BUDGET_PORT] } },
      stats_interval_s: 1,
      ring_buffer_bytes: RING_BYTES,
      sched_idle: 'auto',
      sched_boost_cpu: SHARE,
      sched_boost_burst_s: BURST_S,
    });
    const pid = agent.child.pid!;
    await new Promise((r) => setTimeout(r, 300));
    // six busy loops: at normal priority the agent's threads get a small share of CPU 0
    hog = crowdCpu0(pid, 40, 6);
    try {
      const cpu0 = cpuSeconds(pid);
      const t0 = Date.now();
      requests = await helloLoad(BUDGET_PORT, LOAD_REQUESTS, LOAD_LIMIT_MS);
      loadSeconds = (Date.now() - t0) / 1000;
      loadCpu = cpuSeconds(pid) - cpu0;
    } finally {
      hog.kill('SIGKILL');
    }
    // CPU 0 is free again: under SCHED_IDLE the agent drains what is left and catches up
    const lines = agent.stderr.length;
    await until(
      'the agent caught up (no longer held under SCHED_IDLE)',
      () => agent.stderr.slice(lines).some((l) => (JSON.parse(l) as Record<string, any>).stats?.sched?.held === false),
      15_000,
    );
    stopping = await stopAgent(agent);
    lifeMs = Date.now() - born;
  });

  after(() => cleanUp(hog, agent, nginx));

  test('the budget ran out: the agent went back to SCHED_IDLE and said so', () => {
    assert.ok(stopping, agent.stderr.join('\n'));
    assert.ok(stopping.sched.boosts >= 1, JSON.stringify(stopping.sched));
    assert.ok(stopping.sched.throttles >= 1, JSON.stringify(stopping.sched));
    const warned = agent.stderr.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.level === 40 && String(l.msg).includes('budget for normal priority is spent'));
    assert.ok(warned.length >= 1, agent.stderr.join('\n'));
  });

  test('raised once: spent while the host stayed saturated, it was not raised again until it had caught up', () => {
    // raised again each time a quarter of the budget was back, it took the CPU in stretches for a backlog cut by drops
    assert.ok(stopping, agent.stderr.join('\n'));
    assert.equal(stopping.sched.boosts, 1, JSON.stringify(stopping.sched));
    assert.equal(stopping.sched.throttles, 1, JSON.stringify(stopping.sched));
    assert.equal(stopping.sched.held, false, JSON.stringify(stopping.sched));
  });

  test('while the load ran it took no more CPU than its budget allows (the burst, the refill, what SCHED_IDLE gets beside busy loops)', (t) => {
    // without the budget the agent kept up with this load at normal priority, taking far more
    const allowed = BURST_S + SHARE * loadSeconds + 0.01 * loadSeconds + 0.3;
    t.diagnostic(`agent CPU ${loadCpu.toFixed(2)} s over ${loadSeconds.toFixed(1)} s of load (allowed ${allowed.toFixed(2)}), ${requests} requests`);
    assert.ok(loadCpu <= allowed, `agent CPU ${loadCpu.toFixed(2)} s over ${loadSeconds.toFixed(1)} s of load, allowed ${allowed.toFixed(2)} s`);
  });

  test('nor more time at normal priority behind than the budget: a second there costs a CPU-second at least, whatever CPU it got beside the busy loops', (t) => {
    // charged by CPU alone, the agent sharing CPU 0 with the busy loops spent more than this there
    assert.ok(stopping, agent.stderr.join('\n'));
    const { normal_ms: normalMs, boosts } = stopping.sched as { normal_ms: number; boosts: number };
    // each stretch may end up to a look (10 ms) and a policy change late
    const allowedMs = BURST_S * 1000 + SHARE * lifeMs + 25 * boosts;
    t.diagnostic(`${normalMs} ms at normal priority in ${boosts} stretches over ${(lifeMs / 1000).toFixed(1)} s (allowed ${allowedMs.toFixed(0)})`);
    assert.ok(normalMs <= allowedMs, `${normalMs} ms at normal priority in ${boosts} stretches over ${lifeMs} ms, allowed ${allowedMs.toFixed(0)}`);
  });

  test('what it could not drain the kernel dropped and counted; what it reported is right', () => {
    assert.ok(stopping, agent.stderr.join('\n'));
    assert.ok(stopping.kernel.ringbufDrops > 0, JSON.stringify(stopping.kernel));
    const hello = agent.docs.filter((d) => d.url?.path === '/hello');
    assert.ok(hello.length < requests, `${hello.length} documents for ${requests} requests`);
    const complete = hello.filter((d) => d.method === 'GET' && d.http?.response?.status_code === 200);
    const unmatched = hello.filter((d) => JSON.stringify(d.error ?? '').includes('Unmatched') || d.http?.response === undefined);
    assert.equal(complete.length + unmatched.length, hello.length, JSON.stringify(hello.find((d) => !complete.includes(d) && !unmatched.includes(d))));
  });
});
