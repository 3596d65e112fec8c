import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const PRIORITY = path.resolve(__dirname, '../../../src/util/priority.js');

/** The nice value of every thread of a process that set its own (field 19 of each task's stat). */
function niceInChild(nice: number): { result: { threads: number; failures: string[] }; nices: number[] } {
  const script = `
    const fs = require('node:fs');
    const result = require(${JSON.stringify(PRIORITY)}).setProcessNice(${nice});
    // a thread started afterwards (the libuv pool starts on first use) inherits it
    fs.readFile(__filename === '[stdin]' ? '/proc/self/stat' : __filename, () => {
      const nices = fs.readdirSync('/proc/self/task').map((t) => {
        const stat = fs.readFileSync('/proc/self/task/' + t + '/stat', 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      });
      console.log(JSON.stringify({ result, nices }));
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('every thread of the agent gets the nice value, threads started later too', () => {
  const { result, nices } = niceInChild(7);
  assert.deepEqual(result.failures, []);
  assert.ok(result.threads >= 2, 'node runs several threads from the start');
  assert.ok(nices.length > result.threads, 'the libuv pool started afterwards');
  assert.deepEqual([...new Set(nices)], [7]);
});

test('threads that refuse (gone meanwhile) are reported, not thrown; no task list: this thread', () => {
  const { setProcessNice } = require(PRIORITY) as typeof import('../../../src/util/priority');
  const tasks = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-tasks-'));
  try {
    fs.writeFileSync(path.join(tasks, String(process.pid)), '');
    fs.writeFileSync(path.join(tasks, '2147483000'), ''); // no such thread
    const r = setProcessNice(os.getPriority(), tasks);
    assert.equal(r.threads, 1);
    assert.equal(r.failures.length, 1);
    assert.match(r.failures[0], /^thread 2147483000: /);
  } finally {
    fs.rmSync(tasks, { recursive: true, force: true });
  }
  assert.deepEqual(setProcessNice(os.getPriority(), '/nonexistent-task-dir'), { threads: 1, failures: [] });
});

test('SCHED_IDLE: errors name the errno; threads that take it are counted', () => {
  const { setProcessSchedIdle } = require(PRIORITY) as typeof import('../../../src/util/priority');
  const tasks = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-tasks-'));
  try {
    for (const tid of [11, 12, 13]) fs.writeFileSync(path.join(tasks, String(tid)), '');
    const asked: number[] = [];
    const r = setProcessSchedIdle((tid) => {
      asked.push(tid);
      return tid === 12 ? os.constants.errno.ESRCH : 0;
    }, tasks);
    assert.deepEqual(asked.sort(), [11, 12, 13]);
    assert.equal(r.threads, 2);
    assert.deepEqual(r.failures, [`thread 12: ESRCH (errno ${os.constants.errno.ESRCH})`]);
  } finally {
    fs.rmSync(tasks, { recursive: true, force: true });
  }
});
