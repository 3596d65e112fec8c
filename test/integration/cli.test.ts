import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as readline from 'node:readline';
import { describe, test } from 'node:test';
import { BIN, kernelSkip, loadedPrograms } from '../helpers/agent';

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
    assert.match(r.stdout, /^capture mode: syscall /m);
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
    readline.createInterface({ input: child.stderr }).on('line', (l) => {
      const rec = JSON.parse(l) as { msg: string; stats?: Record<string, any> };
      if (rec.msg === 'stats' && rec.stats) stats.push(rec.stats);
    });
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
