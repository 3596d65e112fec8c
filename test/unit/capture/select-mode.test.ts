import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureStartError, hasBpfCapabilities, programName, type EbpfSourceOptions, type HookSet } from '../../../src/capture/ebpf-source';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hookCandidates, kprobesMissing, openKernelSource, type KernelFacts, type KernelSource } from '../../../src/capture/select-mode';

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

/** A kernel with BTF (any existing file stands for it) and kprobes. */
const WITH_KPROBES: KernelFacts = { btfPath: __filename, kprobesMissing: () => undefined };

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
      WITH_KPROBES,
    );
    assert.equal(source.hooks, 'syscall');
    assert.deepEqual(tried, ['fentry', 'kprobe', 'syscall']);
    assert.deepEqual(attempts.map((a) => [a.hooks, a.code]), [['fentry', 'EPERM'], ['kprobe', 'ENOENT']]);
  });

  test('stops at the first that attaches', () => {
    const tried: HookSet[] = [];
    const { source, attempts } = openKernelSource(base, ['fentry', 'kprobe', 'syscall'], opener({}, tried), WITH_KPROBES);
    assert.equal(source.hooks, 'fentry');
    assert.deepEqual(tried, ['fentry']);
    assert.deepEqual(attempts, []);
  });

  test('when none attaches, one error names each hook set and why', () => {
    assert.throws(
      () => openKernelSource(base, ['fentry', 'kprobe'], opener({ fentry: ['EPERM', 'fentry refused'], kprobe: ['ENOENT', 'no kprobes here'] }, []), WITH_KPROBES),
      (err: Error) => {
        assert.ok(err instanceof CaptureStartError);
        assert.equal(err.message, 'the kprobe mode (fentry or kprobe hooks) cannot run on this kernel:\n  fentry: fentry refused\n  kprobe: no kprobes here');
        return true;
      },
    );
  });

  test('auto, when nothing attaches: "no capture mode can run", each attempt named', () => {
    assert.throws(
      () => openKernelSource(base, ['fentry', 'kprobe', 'syscall'], opener({ fentry: ['EPERM', 'a'], kprobe: ['ENOENT', 'b'], syscall: ['EAGAIN', 'c'] }, []), WITH_KPROBES),
      (err: Error) => err.message === 'no capture mode can run on this kernel:\n  fentry: a\n  kprobe: b\n  syscall: c',
    );
    assert.throws(
      () => openKernelSource(base, ['syscall'], opener({ syscall: ['EACCES', 'c'] }, []), WITH_KPROBES),
      (err: Error) => err.message === 'the syscall mode cannot run on this kernel:\n  syscall: c',
    );
  });

  test('a kernel without BTF gets a message naming it, before anything is loaded', () => {
    const tried: HookSet[] = [];
    assert.throws(
      () => openKernelSource(base, ['fentry', 'syscall'], opener({}, tried), { btfPath: '/nonexistent/btf/vmlinux', kprobesMissing: () => undefined }),
      (err: Error) => err instanceof CaptureStartError && err.code === 'ENOBTF' && /no BTF \(\/nonexistent\/btf\/vmlinux is missing: built without CONFIG_DEBUG_INFO_BTF\)/.test(err.message),
    );
    assert.deepEqual(tried, []);
  });

  test('kprobes known missing: not loaded at all, the attempt says why', () => {
    const tried: HookSet[] = [];
    const { source, attempts } = openKernelSource(base, ['fentry', 'kprobe', 'syscall'], opener({ fentry: ['EPERM', 'a'] }, tried), {
      btfPath: __filename,
      kprobesMissing: () => 'no kprobes',
    });
    assert.equal(source.hooks, 'syscall');
    assert.deepEqual(tried, ['fentry', 'syscall']);
    assert.deepEqual(attempts[1], { hooks: 'kprobe', error: 'no kprobes', code: 'ENOENT' });
  });

  test('kprobes are missing only when neither the kprobe PMU nor tracefs kprobe_events exists', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-kprobe-'));
    try {
      const pmu = path.join(root, 'devices/kprobe');
      const tracefs = path.join(root, 'tracing');
      fs.mkdirSync(path.join(tracefs, 'events'), { recursive: true });
      assert.match(kprobesMissing(pmu, [tracefs]) ?? '', /^this kernel lacks kprobes \(CONFIG_KPROBES/);
      fs.writeFileSync(path.join(tracefs, 'kprobe_events'), '');
      assert.equal(kprobesMissing(pmu, [tracefs]), undefined, 'legacy kprobe_events');
      fs.rmSync(path.join(tracefs, 'kprobe_events'));
      fs.mkdirSync(pmu, { recursive: true });
      assert.equal(kprobesMissing(pmu, [tracefs]), undefined, 'the kprobe PMU');
      assert.equal(kprobesMissing(path.join(root, 'none'), [path.join(root, 'unmounted')]), undefined, 'no tracefs: cannot tell');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
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
