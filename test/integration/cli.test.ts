import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as http from 'node:http';
import * as readline from 'node:readline';
import { describe, test } from 'node:test';
import { BIN, checkReport, kernelSkip, loadedPrograms, startAgent } from '../helpers/agent';
import { freePort } from '../helpers/net';
import { threadStates } from '../helpers/threads';

const skip = kernelSkip();

describe('the CLI as users run it', { skip }, () => {
  test('without capabilities: one clear sentence, exit code 1, nothing attached', () => {
    const before = new Set(loadedPrograms());
    // root's uid, but an empty capability set: what an unprivileged run sees
    const r = spawnSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', process.execPath, BIN, 'run', '--stats-interval', '0'], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^packetbeat-ebpf: .*needs root \(or CAP_BPF and CAP_PERFMON\)/);
    assert.equal(r.stdout, '');
    assert.deepEqual(loadedPrograms().filter((p) => !before.has(p)), []);
  });

  test('check names the mode and every probed feature', () => {
    const r = spawnSync(process.execPath, [BIN, 'check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['btf', 'ring buffer', 'syscall tracepoints', 'kprobes', 'fentry/fexit', 'uprobes', 'AF_PACKET socket filter']) {
      assert.match(r.stdout, new RegExp(`^  (yes|no ) +${f.replace('/', '\\/')} `, 'm'), f);
    }
    // the mode follows from what attached: fentry, then kprobes, then syscall tracepoints
    const has = (f: string) => new RegExp(`^  yes +${f.replace('/', '\\/')} `, 'm').test(r.stdout);
    const expected = has('fentry/fexit') ? 'kprobe with fentry hooks' : has('kprobes') ? 'kprobe with kprobe hooks' : 'syscall';
    assert.match(r.stdout, new RegExp(`^capture mode: ${expected} \\(`, 'm'));
  });

  for (const variant of ['fentry', 'kprobe'] as const) {
    test(`run --mode kprobe --kprobe-variant ${variant}: captures where the kernel has it, else names what is missing; nothing left attached`, async () => {
      const report = checkReport();
      const feature = variant === 'fentry' ? 'fentry/fexit' : 'kprobes';
      const available = report.features.find((f) => f.name === feature)!.available;
      const before = new Set(loadedPrograms());
      const child = spawn(process.execPath, [BIN, 'run', '--mode', 'kprobe', '--kprobe-variant', variant, '--stats-interval', '0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      const capturing = new Promise<boolean>((resolve) => {
        readline.createInterface({ input: child.stderr }).on('line', (l) => {
          stderr += l + '\n';
          if (l.includes('"capturing"')) resolve(true);
        });
        child.once('exit', () => resolve(false));
      });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      if (available) {
        assert.equal(await capturing, true, stderr);
        assert.match(stderr, /"mode":"kprobe"/);
        child.kill('SIGTERM');
        assert.equal(await exited, 0, stderr);
      } else {
        assert.equal(await exited, 1, stderr);
        assert.match(stderr, new RegExp(`^packetbeat-ebpf: the kprobe mode \\(${variant} hooks\\) cannot run on this kernel:`, 'm'));
        assert.match(stderr, variant === 'fentry' ? /fentry\/fexit BPF trampolines/ : /this kernel lacks kprobes \(CONFIG_KPROBES/);
      }
      assert.deepEqual(loadedPrograms().filter((p) => !before.has(p)), []);
    });
  }

  test('run --mode syscall uses the syscall tracepoints', async () => {
    const child = spawn(process.execPath, [BIN, 'run', '--mode', 'syscall', '--stats-interval', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const capturing = await new Promise<boolean>((resolve) => {
      readline.createInterface({ input: child.stderr }).on('line', (l) => {
        stderr += l + '\n';
        if (l.includes('"capturing"')) resolve(true);
      });
      child.once('exit', () => resolve(false));
    });
    assert.equal(capturing, true, stderr);
    assert.match(stderr, /"mode":"syscall"/);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  });

  test('run --sched-idle: every agent thread is under SCHED_IDLE once capturing, and it still captures', async () => {
    const port = await freePort();
    const server = http.createServer((_req, res) => res.end('idle\n'));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const agent = await startAgent({ protocols: { http: { ports: [port] } }, stats_interval_s: 0 }, ['--sched-idle']);
    try {
      assert.match(agent.stderr.join('\n'), /"sched_idle":true/);
      for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${port}/idle/${i}`)).text();
      await agent.waitFor((docs) => docs.filter((d) => d.url?.path?.startsWith('/idle/')).length === 3);
      // each thread's policy (SCHED_IDLE = 5)
      const policies = [...threadStates(agent.child.pid!).values()].map((t) => t.policy);
      assert.ok(policies.length >= 2, `threads: ${policies.length}`);
      assert.deepEqual([...new Set(policies)], [5]);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
      server.close();
    }
  });

  test('a bad --mode is named', () => {
    const r = spawnSync(process.execPath, [BIN, 'run', '--mode', 'kprobes'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /mode: Invalid option: expected one of "auto"\|"syscall"\|"kprobe"/);
  });

  test('a bad config key is named, exit code 1, nothing attached', () => {
    const before = new Set(loadedPrograms());
    const r = spawnSync(process.execPath, [BIN, 'run', '--ports', 'http=80,99999'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /99999 is not a TCP port/);
    assert.deepEqual(loadedPrograms().filter((p) => !before.has(p)), []);
  });

  test('stats lines on stderr every interval, documents only on stdout', async () => {
    const child = spawn(process.execPath, [BIN, 'run', '--stats-interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stats: Array<Record<string, any>> = [];
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const capturing = new Promise<void>((resolve) => {
      readline.createInterface({ input: child.stderr }).on('line', (l) => {
        const rec = JSON.parse(l) as { msg: string; stats?: Record<string, any> };
        if (rec.msg === 'capturing') resolve();
        if (rec.msg === 'stats' && rec.stats) stats.push(rec.stats);
      });
    });
    await capturing;
    // two intervals after it started capturing (loading the programs takes 1-2 s on a busy machine)
    const deadline = Date.now() + 10_000;
    while (stats.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    assert.ok(stats.length >= 2, `stats lines: ${stats.length}`);
    for (const s of stats) {
      for (const k of ['events_per_s', 'bytes_captured', 'transactions_per_s', 'parse_errors', 'queue_depth']) assert.ok(k in s, k);
      assert.ok('ringbufDrops' in s.kernel && 'truncated' in s.kernel);
    }
    for (const line of stdout.split('\n').filter(Boolean)) assert.ok('type' in JSON.parse(line), 'stdout holds documents only');
  });
});
