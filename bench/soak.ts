/**
 * Soak: the agent's memory over time under a steady moderate HTTP load (nginx
 * from apt, wrk paced like http.ts's fixed rate: 16 connections, a 2 ms delay
 * before each request) for --minutes (default 10). Every --sample-s seconds
 * the agent's resident memory is read from /proc (VmRSS, and RssAnon: the
 * JS heap and buffers, without mapped files), beside its own stats line
 * (transactions, tracked connections, queue depth, kernel drops). Reports
 * RSS after the first minute (--baseline-s; half the run when it is shorter
 * than 2 minutes) and at the end, their ratio (target ≤ 1.10), and
 * completeness over the whole run (every document checked, read back from the
 * agent's output file after the load and not kept; 10 minutes at this rate
 * write some 6 GB under the temp directory). Prints and writes
 * bench/results/soak-<date>.json.
 *   node dist/bench/soak.js [--minutes M | --seconds S] [--sample-s N] [--baseline-s B] [--no-write]
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
/** The sample memory growth is measured from: after 1 minute (half the run when it is shorter than 2 minutes). */
const BASELINE_S = arg('baseline-s', Math.min(60, SECONDS / 2));
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
  if (BASELINE_S >= SECONDS) throw new Error(`--baseline-s ${BASELINE_S} must be shorter than the run (${SECONDS} s)`);
  if (SAMPLE_S > BASELINE_S) throw new Error(`--sample-s ${SAMPLE_S} must not exceed --baseline-s ${BASELINE_S}`);
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
  const baseline = samples.find((s) => s.t >= BASELINE_S);
  const end = samples[samples.length - 1];
  if (!baseline || baseline === end) throw new Error(`no sample after ${BASELINE_S} s and before the end: ${JSON.stringify(samples)}`);
  const after = samples.filter((s) => s.t >= baseline.t);
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
      [`after_${BASELINE_S}_s`]: { t: baseline.t, rss: r3(baseline.rssMiB), rss_anon: r3(baseline.rssAnonMiB) },
      at_end: { t: end.t, rss: r3(end.rssMiB), rss_anon: r3(end.rssAnonMiB) },
      max: r3(Math.max(...samples.map((s) => s.rssMiB))),
      peak_vm_hwm: r3(run.rssPeakMiB),
    },
    /** VmRSS at every sample, MiB (times in `samples`) */
    rss_mib_series: samples.map((s) => Math.round(s.rssMiB)),
    rss_growth_end_vs_baseline: { value: r3(end.rssMiB / baseline.rssMiB), target: GROWTH_TARGET },
    rss_anon_growth_end_vs_baseline: r3(end.rssAnonMiB / baseline.rssAnonMiB),
    rss_slope_mib_per_min_after_baseline: r3(slope(after.map((s) => s.t), after.map((s) => s.rssMiB)) * 60),
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
