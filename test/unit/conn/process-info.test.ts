import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { containerIdFromCgroup, createProcessCache, parseExecPayload, readProcess, type TaskHint } from '../../../src/conn/process-info';

const ID = '3f9a1c0e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf0a1b';
const ID2 = 'deadbeef00112233445566778899aabbccddeeff00112233445566778899aabb';

describe('containerIdFromCgroup', () => {
  test('docker, cgroup v2 (systemd driver)', () => {
    assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${ID}.scope\n`), ID);
  });

  test('docker, cgroup v1 (cgroupfs driver), several hierarchies', () => {
    const text = [
      `12:pids:/docker/${ID}`,
      `11:memory:/docker/${ID}`,
      `1:name=systemd:/docker/${ID}`,
      '0::/',
      '',
    ].join('\n');
    assert.equal(containerIdFromCgroup(text), ID);
    assert.equal(containerIdFromCgroup(`12:pids:/docker/${ID}`), ID);
  });

  test('containerd (kubernetes, systemd driver)', () => {
    const text =
      '0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/' +
      `cri-containerd-${ID}.scope\n`;
    assert.equal(containerIdFromCgroup(text), ID);
  });

  test('cri-o', () => {
    assert.equal(containerIdFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/crio-${ID}.scope`), ID);
  });

  test('podman', () => {
    assert.equal(containerIdFromCgroup(`0::/machine.slice/libpod-${ID2}.scope\n`), ID2);
  });

  test('kubernetes, cgroupfs driver (id as the last path element)', () => {
    assert.equal(containerIdFromCgroup(`0::/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/${ID2}\n`), ID2);
  });

  test('host processes have none', () => {
    assert.equal(containerIdFromCgroup('0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome.scope\n'), undefined);
    assert.equal(containerIdFromCgroup('0::/user.slice/user-1000.slice/session-2.scope\n'), undefined);
    assert.equal(containerIdFromCgroup('0::/system.slice/nginx.service\n'), undefined);
    assert.equal(containerIdFromCgroup('0::/\n'), undefined);
    assert.equal(containerIdFromCgroup(''), undefined);
  });

  test('hex strings of the wrong length are not ids', () => {
    assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${ID.slice(1)}.scope`), undefined);
    assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${ID}0.scope`), undefined);
  });
});

describe('readProcess on the real /proc', () => {
  test('this node process', () => {
    const info = readProcess(process.pid);
    assert.ok(info, 'this process is readable');
    assert.equal(info.pid, process.pid);
    assert.equal(info.fromProc, true);
    assert.equal(info.name, fs.readFileSync('/proc/self/comm', 'utf8').trim());
    assert.equal(info.ppid, process.ppid);
    assert.equal(info.executable, fs.realpathSync(process.execPath));
    assert.equal(info.workingDirectory, fs.realpathSync(process.cwd()));
    assert.ok(info.args, 'has args');
    assert.ok(
      info.args.some((a) => path.basename(a) === path.basename(__filename)),
      `args ${JSON.stringify(info.args)} include ${path.basename(__filename)}`,
    );
    assert.equal(info.args.at(-1) === '', false, 'no empty trailing argument');
    assert.equal(info.userId, process.getuid!());
    // started a moment ago (btime has a 1 s resolution; leave room for clock adjustments)
    assert.ok(info.start, 'has a start time');
    const started = Date.parse(info.start);
    const expected = Date.now() - process.uptime() * 1000;
    assert.ok(Math.abs(started - expected) < 60_000, `start ${info.start} is near ${new Date(expected).toISOString()}`);
  });

  test('a pid that does not exist', () => {
    // above the largest pid_max the kernel allows (2^22)
    assert.equal(readProcess(4_194_305), undefined);
  });
});

// ---- a fake /proc ------------------------------------------------------------

const BTIME = 1_700_000_000;

interface FakeProc {
  comm: string;
  ppid: number;
  uid?: number;
  startTicks?: number;
  cmdline?: string[];
  cgroup?: string;
  exe?: string;
  cwd?: string;
}

function makeRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-proc-test-'));
  fs.writeFileSync(path.join(root, 'stat'), `cpu  1 2 3 4\nintr 0\nctxt 12345\nbtime ${BTIME}\nprocesses 100\n`);
  return root;
}

function writeProc(root: string, pid: number, p: FakeProc): void {
  const dir = path.join(root, String(pid));
  fs.mkdirSync(dir, { recursive: true });
  // fields 3..: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss
  const rest = ['S', p.ppid, pid, pid, 0, -1, 4194560, 100, 0, 0, 0, 5, 3, 0, 0, 20, 0, 1, 0, p.startTicks ?? 0, 1000000, 200];
  fs.writeFileSync(path.join(dir, 'stat'), `${pid} (${p.comm}) ${rest.join(' ')}\n`);
  const uid = p.uid ?? 0;
  fs.writeFileSync(path.join(dir, 'status'), `Name:\t${p.comm}\nState:\tS (sleeping)\nPPid:\t${p.ppid}\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t0\t0\t0\t0\n`);
  fs.writeFileSync(path.join(dir, 'cmdline'), p.cmdline ? p.cmdline.map((a) => a + '\0').join('') : '');
  fs.writeFileSync(path.join(dir, 'cgroup'), p.cgroup ?? '0::/\n');
  for (const [link, target] of [['exe', p.exe], ['cwd', p.cwd]] as const) {
    const file = path.join(dir, link);
    fs.rmSync(file, { force: true });
    if (target) fs.symlinkSync(target, file);
  }
}

function removeProc(root: string, pid: number): void {
  fs.rmSync(path.join(root, String(pid)), { recursive: true, force: true });
}

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});
function newRoot(): string {
  const r = makeRoot();
  roots.push(r);
  return r;
}

function hint(pid: number, comm: string, ppid = 1, uid = 0): TaskHint {
  return { pid, comm, ppid, uid };
}

describe('readProcess on a fake /proc', () => {
  test('every field', () => {
    const root = newRoot();
    writeProc(root, 4242, {
      comm: 'python3',
      ppid: 17,
      uid: 0,
      startTicks: 12345,
      cmdline: ['python3', '-m', 'http.server', ''],
      cgroup: `0::/system.slice/docker-${ID}.scope\n`,
      exe: '/usr/bin/python3.11 (deleted)',
      cwd: '/srv/www',
    });
    const info = readProcess(4242, root);
    assert.deepEqual(info, {
      pid: 4242,
      name: 'python3',
      ppid: 17,
      executable: '/usr/bin/python3.11',
      args: ['python3', '-m', 'http.server', ''],
      workingDirectory: '/srv/www',
      start: new Date(BTIME * 1000 + 123_450).toISOString(),
      userId: 0,
      userName: 'root',
      containerId: ID,
      fromProc: true,
    });
  });

  test('a comm with spaces and parentheses', () => {
    const root = newRoot();
    writeProc(root, 7, { comm: 'a (b) c)', ppid: 3 });
    const info = readProcess(7, root);
    assert.equal(info?.name, 'a (b) c)');
    assert.equal(info?.ppid, 3);
  });

  test('kernel threads and zombies: no cmdline, no exe', () => {
    const root = newRoot();
    writeProc(root, 2, { comm: 'kthreadd', ppid: 0 });
    const info = readProcess(2, root);
    assert.ok(info);
    assert.equal(info.args, undefined);
    assert.equal(info.executable, undefined);
    assert.equal(info.workingDirectory, undefined);
    assert.equal(info.containerId, undefined);
  });
});

describe('createProcessCache', () => {
  test('reads once, then serves from the cache until the TTL passes', () => {
    const root = newRoot();
    let t = 1_000;
    const cache = createProcessCache({ procRoot: root, ttlMs: 100, now: () => t });
    writeProc(root, 100, { comm: 'nginx', ppid: 1, cmdline: ['nginx: worker process'] });
    const first = cache.lookup(hint(100, 'nginx'));
    assert.equal(first.fromProc, true);
    assert.equal(first.ppid, 1);

    // the process changed (reparented) but the entry is fresh
    writeProc(root, 100, { comm: 'nginx', ppid: 55, cmdline: ['nginx: worker process'] });
    t += 99;
    assert.equal(cache.lookup(hint(100, 'nginx')).ppid, 1);

    // stale: read again
    t += 1;
    const again = cache.lookup(hint(100, 'nginx'));
    assert.equal(again.ppid, 55);
    assert.equal(cache.size(), 1);
  });

  test('an exited process keeps its last info', () => {
    const root = newRoot();
    let t = 0;
    const cache = createProcessCache({ procRoot: root, ttlMs: 100, now: () => t });
    writeProc(root, 200, { comm: 'curl', ppid: 9, cmdline: ['curl', 'http://localhost/'], cgroup: `0::/machine.slice/libpod-${ID2}.scope\n` });
    const live = cache.lookup(hint(200, 'curl', 9));
    removeProc(root, 200);
    t += 1_000;
    const gone = cache.lookup(hint(200, 'curl', 9));
    assert.equal(gone.fromProc, true);
    assert.deepEqual(gone.args, ['curl', 'http://localhost/']);
    assert.equal(gone.containerId, ID2);
    assert.deepEqual(gone, live);
  });

  test('an unknown process already gone falls back to the kernel hint', () => {
    const root = newRoot();
    const cache = createProcessCache({ procRoot: root, now: () => 0 });
    const info = cache.lookup({ pid: 300, comm: 'short-lived', ppid: 42, uid: 0 });
    assert.equal(info.fromProc, false);
    assert.equal(info.pid, 300);
    assert.equal(info.name, 'short-lived');
    assert.equal(info.ppid, 42);
    assert.equal(info.userId, 0);
    assert.equal(info.userName, 'root');
    assert.equal(info.executable, undefined);
    assert.equal(info.args, undefined);
  });

  test('a new comm for the same pid (exec) reads /proc again at once', () => {
    const root = newRoot();
    let t = 0;
    const cache = createProcessCache({ procRoot: root, ttlMs: 60_000, now: () => t });
    writeProc(root, 400, { comm: 'bash', ppid: 1, cmdline: ['bash'], exe: '/usr/bin/bash' });
    assert.equal(cache.lookup(hint(400, 'bash')).executable, '/usr/bin/bash');

    writeProc(root, 400, { comm: 'curl', ppid: 1, cmdline: ['curl', 'example.com'], exe: '/usr/bin/curl' });
    t += 10; // well within the TTL
    const after = cache.lookup(hint(400, 'curl'));
    assert.equal(after.name, 'curl');
    assert.equal(after.executable, '/usr/bin/curl');
    assert.deepEqual(after.args, ['curl', 'example.com']);
  });

  test('maxEntries bounds the cache', () => {
    const root = newRoot();
    const cache = createProcessCache({ procRoot: root, maxEntries: 2, now: () => 0 });
    for (const pid of [501, 502, 503]) {
      writeProc(root, pid, { comm: 'w', ppid: 1 });
      cache.lookup(hint(pid, 'w'));
    }
    assert.equal(cache.size(), 2);
  });

  test('sweep forgets entries unused for keepMs', () => {
    const root = newRoot();
    let t = 0;
    const cache = createProcessCache({ procRoot: root, ttlMs: 10_000, keepMs: 1_000, now: () => t });
    writeProc(root, 601, { comm: 'a', ppid: 1 });
    writeProc(root, 602, { comm: 'b', ppid: 1 });
    cache.lookup(hint(601, 'a'));
    cache.lookup(hint(602, 'b'));
    t = 800;
    cache.lookup(hint(602, 'b')); // used again: kept
    t = 1_500;
    cache.sweep();
    assert.equal(cache.size(), 1);
    t = 1_801;
    cache.sweep();
    assert.equal(cache.size(), 0);
  });
});

describe('exec events', () => {
  const payload = (exe: string, args: string[]) => {
    const head = Buffer.alloc(256);
    head.write(exe);
    return Buffer.concat([head, Buffer.from(args.map((a) => a + '\0').join(''))]);
  };

  test('parseExecPayload splits the path and argv', () => {
    const e = parseExecPayload(9, 'curl', payload('/usr/bin/curl', ['curl', '-s', 'http://x/']), 256);
    assert.deepEqual(e, { pid: 9, comm: 'curl', executable: '/usr/bin/curl', args: ['curl', '-s', 'http://x/'] });
    // argv cut by the kernel's copy limit: the partial last argument is kept
    const cut = parseExecPayload(9, 'curl', payload('/usr/bin/curl', ['curl', 'abcdef']).subarray(0, 256 + 8), 256);
    assert.deepEqual(cut.args, ['curl', 'abc']);
  });

  test('a process gone before /proc was read gets its path and args from the exec event', () => {
    const cache = createProcessCache({ procRoot: newRoot() });
    cache.noteExec!(parseExecPayload(500, 'curl', payload('/usr/bin/curl', ['curl', 'http://a/']), 256));
    const info = cache.lookup(hint(500, 'curl', 7));
    assert.equal(info.executable, '/usr/bin/curl');
    assert.deepEqual(info.args, ['curl', 'http://a/']);
    assert.equal(info.fromProc, false);
    assert.equal(info.ppid, 7);
  });

  test('a zombie (stat but no exe, no cmdline) is completed by the exec event', () => {
    const root = newRoot();
    writeProc(root, 501, { comm: 'curl', ppid: 3 });
    const cache = createProcessCache({ procRoot: root });
    cache.noteExec!(parseExecPayload(501, 'curl', payload('/usr/bin/curl', ['curl', 'http://b/']), 256));
    const info = cache.lookup(hint(501, 'curl', 3));
    assert.equal(info.fromProc, true);
    assert.equal(info.executable, '/usr/bin/curl');
    assert.deepEqual(info.args, ['curl', 'http://b/']);
  });

  test('an exec of another program under a reused pid is not used', () => {
    const cache = createProcessCache({ procRoot: newRoot() });
    cache.noteExec!(parseExecPayload(502, 'sleep', payload('/usr/bin/sleep', ['sleep', '1']), 256));
    const info = cache.lookup(hint(502, 'wget'));
    assert.equal(info.executable, undefined);
    assert.equal(info.name, 'wget');
  });
});
