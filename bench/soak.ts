/**
 * Soak: the agent's memory over time under a steady moderate HTTP load (nginx
 * from apt, wrk paced like http.ts's fixed rate: 16 connections, a 2 ms delay
 * before each request) for --minutes (default 10). Every --sample-s seconds
 * the agent's resident memory is read from /proc (VmRSS, and RssAnon: the
 * JS heap and buffers, without mapped files), beside its own stats line
 * (transactions, tracked connections, queue depth, kernel drops). Reports
 * RSS after the first minute and at the end, and, because the JS heap saws
 * up and down between collections, the growth as the ratio of the highest
 * RSS in the last minute to the highest in the second minute (target ≤ 1.10;
 * the window is a quarter of the run when that is shorter than 4 minutes),
 * and completeness over the whole run (every document checked, read back from
 * the agent's output file after the load and not kept; 10 minutes at this
 * rate write some 6 GB under the temp directory). Prints and writes
 * bench/results/soak-<date>.json.
 *   node dist/bench/soak.js [--minutes M | --seconds S] [--sample-s N] [--window-s W] [--no-write]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  arg,
  countHttpDoc,
  machine,
  newHttpTally,
  paceScript,
  r3,
  report,
  requireTools,
  runMain,
  startNginx,
  statusMiB,
  withAgent,
  wrkAsync,
  type WrkResult,
} from './common';

const PORT = 18350;

const SECONDS = arg('seconds', arg('minutes', 10) * 60);
const SAMPLE_S = arg('sample-s', 10);
/** Memory is compared between the window after the first one and the last one: 1 minute, or a quarter of a shorter run. */
const WINDOW_S = arg('window-s', Math.min(60, SECONDS / 4));
const CONNECTIONS = 16;
const DELAY_MS = arg('delay-ms', 2);
const GROWTH_TARGET = 1.1;

interface Sample {
  /** seconds since the load started */
  t: number;
  rssMiB: number;
  rssAnonMiB: number;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den > 0 ? num / den : NaN;
}

async function main(): Promise<void> {
  requireTools({ nginx: 'nginx-light', wrk: 'wrk' });
  if (3 * WINDOW_S > SECONDS) throw new Error(`--window-s ${WINDOW_S} must be at most a third of the run (${SECONDS} s)`);
  if (SAMPLE_S > WINDOW_S) throw new Error(`--sample-s ${SAMPLE_S} must not exceed --window-s ${WINDOW_S}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-soak-bench-'));
  const nginx = await startNginx(dir, PORT);
  const tally = newHttpTally();
  const samples: Sample[] = [];
  const statsLines: Array<{ t: number } & Record<string, unknown>> = [];
  let loadStart = 0;
  const since = () => r3((Date.now() - loadStart) / 1000);
  let run;
  try {
    run = await withAgent(
      ['--ports', `http=${PORT}`],
      dir,
      async ({ pid }): Promise<WrkResult> => {
        loadStart = Date.now();
        const sample = () => samples.push({ t: since(), rssMiB: statusMiB(pid, 'VmRSS'), rssAnonMiB: statusMiB(pid, 'RssAnon') });
        sample();
        const timer = setInterval(sample, SAMPLE_S * 1000);
        try {
          return await wrkAsync({ port: PORT, connections: CONNECTIONS, seconds: SECONDS, script: paceScript(dir, DELAY_MS) });
        } finally {
          clearInterval(timer);
          sample();
        }
      },
      {
        statsIntervalS: SAMPLE_S,
        onStats: (s) =>
          statsLines.push({
            t: since(),
            transactions: s.transactions,
            transactions_per_s: s.transactions_per_s,
            connections: s.connections,
            queue_depth: s.queue_depth,
            ringbuf_drops: s.kernel?.ringbufDrops,
            capture_pauses: s.capture_pauses,
          }),
        onDoc: (d) => countHttpDoc(tally, d),
      },
    );
  } finally {
    await nginx.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const wrk = run.result;
  // the first window is warm-up; the second is compared with the last
  const early = samples.filter((x) => x.t >= WINDOW_S && x.t < 2 * WINDOW_S);
  const late = samples.filter((x) => x.t >= SECONDS - WINDOW_S);
  if (early.length === 0 || late.length === 0) throw new Error(`no sample in a window (every ${SAMPLE_S} s, windows of ${WINDOW_S} s): ${JSON.stringify(samples)}`);
  const first = early[0];
  const end = samples[samples.length - 1];
  const peak = (xs: Sample[], f: (x: Sample) => number) => Math.max(...xs.map(f));
  const after = samples.filter((x) => x.t >= WINDOW_S);
  const summary = {
    machine: machine(),
    load: {
      tool: 'wrk, paced',
      load: `wrk -t1 -c${CONNECTIONS} with a ${DELAY_MS} ms delay before each request, ${SECONDS} s`,
      requests: wrk.requests,
      requests_per_s: wrk.rps,
      wrk_socket_errors: wrk.errors,
      sample_every_s: SAMPLE_S,
    },
    rss_mib: {
      [`after_${WINDOW_S}_s`]: { t: first.t, rss: r3(first.rssMiB), rss_anon: r3(first.rssAnonMiB) },
      at_end: { t: end.t, rss: r3(end.rssMiB), rss_anon: r3(end.rssAnonMiB) },
      [`highest_${WINDOW_S}_to_${2 * WINDOW_S}_s`]: r3(peak(early, (x) => x.rssMiB)),
      [`highest_in_last_${WINDOW_S}_s`]: r3(peak(late, (x) => x.rssMiB)),
      peak_vm_hwm: r3(run.rssPeakMiB),
    },
    /** VmRSS at every sample, MiB (times in `samples`) */
    rss_mib_series: samples.map((x) => Math.round(x.rssMiB)),
    rss_growth: { value: r3(peak(late, (x) => x.rssMiB) / peak(early, (x) => x.rssMiB)), target: GROWTH_TARGET, of: 'highest RSS in the last window / in the second' },
    rss_anon_growth: r3(peak(late, (x) => x.rssAnonMiB) / peak(early, (x) => x.rssAnonMiB)),
    rss_end_vs_after_first_window: r3(end.rssMiB / first.rssMiB),
    rss_slope_mib_per_min_after_first_window: r3(slope(after.map((x) => x.t), after.map((x) => x.rssMiB)) * 60),
    completeness: r3(tally.transactions / wrk.requests),
    transactions: tally.transactions,
    unanswered_at_stop: tally.unanswered,
    unmatched_after_drops: tally.unmatched,
    wrong_documents: tally.wrong,
    ...(tally.wrongSample.length > 0 ? { wrong_sample: tally.wrongSample } : {}),
    kernel: run.stats.kernel ?? null,
    capture_pauses: run.stats.capture_pauses ?? null,
    agent_cpu_seconds_per_10k_txns: r3((run.cpuSeconds / tally.transactions) * 1e4),
    agent_cpu_seconds: r3(run.cpuSeconds),
    samples,
    agent_stats: statsLines,
  };
  report('soak', summary, ['samples', 'agent_stats']);
}

runMain(main);
