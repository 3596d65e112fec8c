import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureStartError, hasBpfCapabilities, programName, type EbpfSourceOptions, type HookSet } from '../../../src/capture/ebpf-source';
import { hookCandidates, openKernelSource, type KernelSource } from '../../../src/capture/select-mode';

const base = { ports: [[80, 1]] as Array<[number, number]>, pids: [], maxPayload: 4096, ringBytes: 1 << 20, wakeupBytes: 0, drainIntervalMs: 20 };

/** An opener where the listed hook sets fail like the addon would. */
function opener(failing: Partial<Record<HookSet, [string, string]>>, tried: HookSet[]) {
  return (o: EbpfSourceOptions): KernelSource => {
    tried.push(o.hooks!);
    const f = failing[o.hooks!];
    if (f) throw new CaptureStartError(f[1], f[0]);
    return { mode: o.hooks === 'syscall' ? 'syscall' : 'kprobe', hooks: o.hooks! } as unknown as KernelSource;
  };
}

describe('capture mode selection', () => {
  test('auto prefers fentry, then kprobes, then syscall tracepoints', () => {
    assert.deepEqual(hookCandidates('auto', 'auto'), ['fentry', 'kprobe', 'syscall']);
    assert.deepEqual(hookCandidates('auto', 'kprobe'), ['kprobe', 'syscall']);
    assert.deepEqual(hookCandidates('kprobe', 'auto'), ['fentry', 'kprobe']);
    assert.deepEqual(hookCandidates('kprobe', 'fentry'), ['fentry']);
    assert.deepEqual(hookCandidates('syscall', 'fentry'), ['syscall']);
  });

  test('falls through to the first hook set that attaches and reports the others', () => {
    const tried: HookSet[] = [];
    const { source, attempts } = openKernelSource(
      base,
      ['fentry', 'kprobe', 'syscall'],
      opener({ fentry: ['EPERM', 'refused'], kprobe: ['ENOENT', 'no kprobes'] }, tried),
    );
    assert.equal(source.hooks, 'syscall');
    assert.deepEqual(tried, ['fentry', 'kprobe', 'syscall']);
    assert.deepEqual(attempts.map((a) => [a.hooks, a.code]), [['fentry', 'EPERM'], ['kprobe', 'ENOENT']]);
  });

  test('stops at the first that attaches', () => {
    const tried: HookSet[] = [];
    const { source, attempts } = openKernelSource(base, ['fentry', 'kprobe', 'syscall'], opener({}, tried));
    assert.equal(source.hooks, 'fentry');
    assert.deepEqual(tried, ['fentry']);
    assert.deepEqual(attempts, []);
  });

  test('when none attaches, one error names each hook set and why', () => {
    assert.throws(
      () => openKernelSource(base, ['fentry', 'kprobe'], opener({ fentry: ['EPERM', 'fentry refused'], kprobe: ['ENOENT', 'no kprobes here'] }, [])),
      (err: Error) => {
        assert.ok(err instanceof CaptureStartError);
        assert.equal(err.message, 'the kprobe mode (fentry or kprobe hooks) cannot run on this kernel:\n  fentry: fentry refused\n  kprobe: no kprobes here');
        return true;
      },
    );
  });

  test('auto, when nothing attaches: "no capture mode can run", each attempt named', () => {
    assert.throws(
      () => openKernelSource(base, ['fentry', 'kprobe', 'syscall'], opener({ fentry: ['EPERM', 'a'], kprobe: ['ENOENT', 'b'], syscall: ['EAGAIN', 'c'] }, [])),
      (err: Error) => err.message === 'no capture mode can run on this kernel:\n  fentry: a\n  kprobe: b\n  syscall: c',
    );
    assert.throws(
      () => openKernelSource(base, ['syscall'], opener({ syscall: ['EACCES', 'c'] }, [])),
      (err: Error) => err.message === 'the syscall mode cannot run on this kernel:\n  syscall: c',
    );
  });

  test('a kernel without BTF gets a message naming it, before anything is loaded', () => {
    const tried: HookSet[] = [];
    assert.throws(
      () => openKernelSource(base, ['fentry', 'syscall'], opener({}, tried), '/nonexistent/btf/vmlinux'),
      (err: Error) => err instanceof CaptureStartError && err.code === 'ENOBTF' && /no BTF \(\/nonexistent\/btf\/vmlinux is missing: built without CONFIG_DEBUG_INFO_BTF\)/.test(err.message),
    );
    assert.deepEqual(tried, []);
  });

  test('program names follow the BPF object (one per hook set)', () => {
    assert.equal(programName('syscall', 'enter', 'read'), 'handle_enter_read');
    assert.equal(programName('fentry', 'exit', 'read'), 'fexit_exit_read');
    assert.equal(programName('kprobe', 'enter', 'close'), 'kprobe_enter_close');
  });

  test('capabilities come from CapEff: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON', () => {
    assert.equal(hasBpfCapabilities('CapEff:\t000001ffffffffff\n'), true);
    assert.equal(hasBpfCapabilities('CapEff:\t0000000000000000\n'), false);
    assert.equal(hasBpfCapabilities(`CapEff:\t${((1n << 39n) | (1n << 38n)).toString(16).padStart(16, '0')}\n`), true);
    assert.equal(hasBpfCapabilities(`CapEff:\t${(1n << 39n).toString(16).padStart(16, '0')}\n`), false);
  });
});
