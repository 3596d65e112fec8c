import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCheck } from '../../../src/agent/check';
import { formatLine, parseConsole, readCheck } from '../../vm/console-log';
import { RUNS, selectRuns, type VmRun } from '../../vm/matrix';

describe('VM console log', () => {
  test('lines of ours come back per run; CRLF, kernel noise and torn lines do not pass as documents', () => {
    const doc = { type: 'http', method: 'GET', url: { path: '/hello' } };
    const text = [
      'SeaBIOS (version 1.16.2)',
      formatLine('start', '-', { release: '6.1.0-50-amd64', uptimeS: 7.5, nodeStartMs: 800 }),
      formatLine('begin', 'syscall', { args: ['run', '-c', '/tmp/x.json'] }),
      // the console turns \n into \r\n; a kernel message may precede ours on a line
      formatLine('doc', 'syscall', JSON.stringify(doc)).replace('\n', '\r\n'),
      '[   12.3] random: crng init done' + formatLine('stderr', 'syscall', '{"msg":"capturing","mode":"syscall"}'),
      formatLine('client', 'syscall', { id: 'http-get', pid: 42, exit: 0, output: '200' }),
      // cut short by a kernel message: not a document
      '@@pbe-vm doc syscall {"type":"http","meth[   13.1] oops',
      formatLine('end', 'syscall', { exit: 0, signal: null, elapsedMs: 900 }),
      formatLine('programs', 'syscall', ['7:handle_exec']),
      formatLine('done', '-', ''),
      '@@pbe-vm poweroff -',
    ].join('\n');
    const r = parseConsole(text);
    assert.equal(r.start?.release, '6.1.0-50-amd64');
    const run = r.runs.get('syscall');
    assert.ok(run);
    assert.deepEqual(run.args, ['run', '-c', '/tmp/x.json']);
    assert.deepEqual(run.docs, [doc]);
    assert.deepEqual(run.stderr, ['{"msg":"capturing","mode":"syscall"}']);
    assert.deepEqual(run.clients, [{ id: 'http-get', pid: 42, exit: 0, output: '200' }]);
    assert.equal(run.end?.exit, 0);
    assert.deepEqual(run.programsAfter, ['7:handle_exec']);
    assert.equal(r.unreadable.length, 1);
    assert.ok(r.done);
    assert.ok(r.poweroff);
  });

  test('a console that stops early has no end, no done, no power-off', () => {
    const r = parseConsole(formatLine('begin', 'syscall', { args: [] }) + '@@pbe-vm doc syscall {"type":"ht');
    assert.equal(r.runs.get('syscall')?.end, undefined);
    assert.equal(r.done, false);
    assert.equal(r.poweroff, false);
  });

  // not annotated: the report may carry more than these fields (e.g. hook trials)
  const report = {
    kernel: '6.1.0-50-amd64',
    root: true,
    features: [
      { name: 'btf', available: true, detail: '/sys/kernel/btf/vmlinux' },
      { name: 'kprobes', available: false, detail: 'no kprobe PMU' },
      { name: 'AF_PACKET socket filter', available: true, detail: 'loads' },
    ],
    trials: [],
    mode: 'syscall' as const,
    reason: 'syscall tracepoints are available',
  };

  test("`check`'s text output: features and mode", () => {
    const c = readCheck(formatCheck(report));
    assert.deepEqual([...c.features], [['btf', true], ['kprobes', false], ['AF_PACKET socket filter', true]]);
    assert.equal(c.mode, 'syscall');
  });

  test("`check`'s text output names the kprobe mode's hooks", () => {
    const c = readCheck('kernel 6.1.0-50-amd64\n  yes  fentry/fexit             loads\ncapture mode: kprobe with fentry hooks (fentry attaches)\n');
    assert.deepEqual([...c.features], [['fentry/fexit', true]]);
    assert.equal(c.mode, 'kprobe');
    assert.equal(c.hooks, 'fentry');
    assert.equal(readCheck(formatCheck(report)).hooks, undefined);
  });

  test("`check`'s JSON output: the same", () => {
    const c = readCheck(JSON.stringify(report));
    assert.deepEqual([...c.features], [['btf', true], ['kprobes', false], ['AF_PACKET socket filter', true]]);
    assert.equal(c.mode, 'syscall');
  });

  test('pbe_runs on the kernel command line picks runs by name', () => {
    const runs: VmRun[] = [
      { name: 'a', args: [], capturing: {}, processes: 'both' },
      { name: 'b', args: [], capturing: {}, processes: 'both' },
    ];
    assert.deepEqual(selectRuns('console=ttyS0 pbe_runs=b panic=-1', runs).map((r) => r.name), ['b']);
    assert.deepEqual(selectRuns('console=ttyS0', runs).map((r) => r.name), ['a', 'b']);
    assert.equal(new Set(RUNS.map((r) => r.name)).size, RUNS.length, 'run names are unique');
    for (const r of RUNS) assert.match(r.name, /^[a-z0-9-]+$/);
  });
});
