import * as fs from 'node:fs';

/** One thread of a process as /proc shows it. */
export interface ThreadState {
  /** Scheduling policy (field 41 of /proc/PID/task/TID/stat: SCHED_OTHER 0, SCHED_IDLE 5). */
  policy: number;
  /** Time on CPU, ns (first field of /proc/PID/task/TID/schedstat). */
  cpuNs: number;
  /** Times it went to sleep by itself (voluntary_ctxt_switches in its status). */
  voluntarySwitches: number;
}

/** Every thread of `pid` now, by tid (threads that end meanwhile are left out). */
export function threadStates(pid: number): Map<number, ThreadState> {
  const out = new Map<number, ThreadState>();
  for (const name of fs.readdirSync(`/proc/${pid}/task`)) {
    const tid = Number(name);
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // after the command's closing parenthesis: field 3 (state) on
      const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
      const cpuNs = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const voluntarySwitches = Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? NaN);
      out.set(tid, { policy, cpuNs, voluntarySwitches });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}
