import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, test } from 'node:test';
import { countersSince, otherTracers, ratioInterval, requireNoOtherTracer, schedOf, schedSummary } from '../../../bench/common';

describe("bench: an agent's counters over the measured part of a run", () => {
  test("counters, kernel counters and sched_idle auto's boosts are taken since the warm-up; the policy is the end's", () => {
    const start = { events: 100, kernel: { events: 90, ringbufDrops: 1 }, sched: { policy: 'idle', boosts: 2, normal_ms: 150.5 }, uptime_s: 4 };
    const end = { events: 350, kernel: { events: 300, ringbufDrops: 1 }, sched: { policy: 'normal', boosts: 5, normal_ms: 400 }, uptime_s: 10 };
    const since = countersSince(end, start);
    assert.equal(since.events, 250);
    assert.deepEqual(since.kernel, { events: 210, ringbufDrops: 0 });
    assert.deepEqual(schedOf(since), { boosts: 3, normal_ms: 249.5, policy: 'normal' });
  });

  test('an agent without sched_idle auto has no sched figures', () => {
    assert.equal(schedOf({ events: 1 }), null);
    assert.equal(schedOf(countersSince({ events: 2 }, { events: 1 })), null);
    assert.deepEqual(schedSummary([{ boosts: 1, normal_ms: 12.4, policy: 'idle' }, null]), { boosts: [1, null], normal_ms: [12, null] });
  });
});

describe('ratioInterval', () => {
  test('the geometric mean of paired ratios, inside its bootstrap interval; the same ratios, the same interval', () => {
    assert.deepEqual(ratioInterval([0.9, 0.9, 0.9]), { geomean: 0.9, low: 0.9, high: 0.9 });
    const ratios = [0.85, 0.92, 0.88, 0.95, 0.9, 0.87, 0.93, 0.91];
    const r = ratioInterval(ratios);
    assert.equal(r.geomean, Math.round(Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length) * 1000) / 1000);
    assert.ok(r.low < r.geomean && r.geomean < r.high && r.high < 0.95, JSON.stringify(r));
    assert.deepEqual(ratioInterval(ratios), r);
    // one ratio far off widens the interval
    const wide = ratioInterval([...ratios.slice(1), 1.4]);
    assert.ok(wide.high - wide.low > r.high - r.low, JSON.stringify(wide));
  });
});

describe('otherTracers', () => {
  /** A process whose command line ends with `args` (node waiting, the args unused). */
  async function lookalike(...args: string[]): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)', ...args], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    return child;
  }

  test('an agent running (packetbeat-ebpf run) is named, with its pid; packetbeat-ebpf replay and other commands are not', async () => {
    const agent = await lookalike('/opt/pbe/bin/packetbeat-ebpf', 'run', '--ports', 'http=18300');
    const replay = await lookalike('/opt/pbe/bin/packetbeat-ebpf', 'replay', 'x.pcap');
    const other = await lookalike('run', 'packetbeat-ebpf-notes.txt');
    try {
      const pids = otherTracers().map((t) => t.pid);
      assert.ok(pids.includes(agent.pid!), JSON.stringify(otherTracers()));
      assert.ok(!pids.includes(replay.pid!));
      assert.ok(!pids.includes(other.pid!));
      assert.match(otherTracers().find((t) => t.pid === agent.pid)!.command, /packetbeat-ebpf run --ports http=18300$/);
      assert.throws(() => requireNoOtherTracer(), new RegExp(`another tracer is running[\\s\\S]*${agent.pid}: `));
    } finally {
      await Promise.all([agent, replay, other].map((c) => new Promise((resolve) => (c.kill(), c.once('exit', resolve)))));
    }
    assert.ok(!otherTracers().some((t) => t.pid === agent.pid), 'gone once it exited');
  });
});
