import * as fs from 'node:fs';
import * as os from 'node:os';

export interface NiceResult {
  /** Threads of this process given the nice value. */
  threads: number;
  /** Threads that refused (gone meanwhile, or no permission to raise priority): with why. */
  failures: string[];
}

/**
 * Give every thread of this process the nice value (Linux keeps one per thread;
 * threads started later inherit it from the thread that starts them). Above 0 the
 * agent cedes the CPU to the traced applications when the host is saturated.
 */
export function setProcessNice(nice: number, taskDir = '/proc/self/task'): NiceResult {
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
      os.setPriority(tid, nice);
      threads++;
    } catch (err) {
      failures.push(`thread ${tid}: ${(err as Error).message}`);
    }
  }
  return { threads, failures };
}
