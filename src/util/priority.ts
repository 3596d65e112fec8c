import * as fs from 'node:fs';
import * as os from 'node:os';

export interface ThreadsResult {
  /** Threads of this process that took the setting. */
  threads: number;
  /** Threads that refused (gone meanwhile, or no permission): with why. */
  failures: string[];
}

/**
 * Apply `set` to every thread of this process (Linux keeps priority and
 * scheduling policy per thread; threads started later inherit them from the
 * thread that starts them). `set` throws to refuse.
 */
function forEveryThread(set: (tid: number) => void, taskDir: string): ThreadsResult {
  const failures: string[] = [];
  let threads = 0;
  let tids: number[];
  try {
    tids = fs.readdirSync(taskDir).map(Number).filter(Number.isInteger);
  } catch {
    tids = [process.pid];
  }
  for (const tid of tids) {
    try {
      set(tid);
      threads++;
    } catch (err) {
      failures.push(`thread ${tid}: ${(err as Error).message}`);
    }
  }
  return { threads, failures };
}

/**
 * Give every thread of this process the nice value. Above 0 the agent cedes the
 * CPU to the traced applications when the host is saturated.
 */
export function setProcessNice(nice: number, taskDir = '/proc/self/task'): ThreadsResult {
  return forEveryThread((tid) => os.setPriority(tid, nice), taskDir);
}

/**
 * Put every thread of this process under SCHED_IDLE through `setSchedIdle`
 * (sched_setscheduler: 0 or an errno): the agent then runs only on CPU that no
 * other task wants, and any waking task preempts it.
 */
export function setProcessSchedIdle(setSchedIdle: (tid: number) => number, taskDir = '/proc/self/task'): ThreadsResult {
  return forEveryThread((tid) => {
    const errno = setSchedIdle(tid);
    if (errno !== 0) throw new Error(errnoName(errno));
  }, taskDir);
}

function errnoName(errno: number): string {
  const name = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0];
  return name ? `${name} (errno ${errno})` : `errno ${errno}`;
}
