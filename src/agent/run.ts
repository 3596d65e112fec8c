import * as os from 'node:os';
import { CaptureStartError, hasBpfCapabilities } from '../capture/ebpf-source';
import { hookCandidates, openKernelSource } from '../capture/select-mode';
import type { CaptureSource, SchedGuardState } from '../capture/source';
import { drainIntervalMs, drainMinIntervalMs, type Config } from '../config';
import { createRecorder, type Recorder } from '../capture/recording';
import { createProcessCache } from '../conn/process-info';
import { closeOutputs, createOutputs } from '../outputs';
import type { Output } from '../outputs/types';
import { createModules, portMap } from '../protocols/registry';
import { PROTOCOL_IDS } from '../protocols/types';
import type { Logger } from '../util/logger';
import { loadBinding } from '../capture/addon';
import { setProcessNice, setProcessSchedIdle } from '../util/priority';
import { createPacketModeSource } from './packet-mode';
import { createPipeline, IDLE_TICK_MS, TICK_MS, type Pipeline } from './pipeline';

/** How long shutdown waits for outputs to deliver (then backends spool what is left). */
const SHUTDOWN_FLUSH_MS = 5_000;
/** How long shutdown drains the ring buffer (a full 16 MiB one takes ~1-2 s to decode). */
const SHUTDOWN_DRAIN_MS = 5_000;

export interface RunningAgent {
  stop(reason: string): Promise<void>;
  readonly done: Promise<number>;
}

/** Kernel ports map: the ports of every protocol that has a decoder. */
export function kernelPorts(config: Config): Array<[number, number]> {
  return [...portMap(config, createModules(config))].map(([port, name]) => [port, PROTOCOL_IDS[name]]);
}

/** sched_idle auto's figures in the stats line. */
function schedFigures(g: SchedGuardState) {
  return {
    policy: g.boosted ? 'normal' : 'idle',
    boosts: g.boosts,
    normal_ms: g.boostedMs,
    throttles: g.throttles,
    held: g.held,
    budget_ms: Math.round(g.budgetMs),
    ...(g.lastErrno !== 0 ? { last_errno: g.lastErrno } : {}),
  };
}

/** sched_idle auto: normal priority from an eighth of the ring buffer, idle again after 5 s under 1/64. */
const SCHED_AUTO_HIGH = 1 / 8;
const SCHED_AUTO_LOW = 1 / 64;
const SCHED_AUTO_HOLD_MS = 5000;
/** At most one warning a minute that sched_idle auto's budget ran out. */
const THROTTLE_LOG_MS = 60_000;

function statsLine(
  source: CaptureSource,
  pipeline: Pipeline,
  outputs: Output[],
  prev: { at: number; events: number; txns: number },
  backpressure: { pauses: number },
  guarded: boolean,
) {
  const k = source.counters();
  const p = pipeline.stats();
  const now = Date.now();
  const secs = Math.max(0.001, (now - prev.at) / 1000);
  const line = {
    events_per_s: Math.round((p.events - prev.events) / secs),
    transactions_per_s: Math.round((p.transactions - prev.txns) / secs),
    events: p.events,
    bytes_captured: p.capturedBytes,
    bytes_moved: p.dataBytes,
    transactions: p.transactions,
    joined: p.joined,
    unmatched: p.unmatched,
    parse_errors: p.parseErrors,
    internal_errors: p.internalErrors,
    inferred: p.inferred,
    shadowed: p.shadowed,
    infer_ignored: p.inferIgnored,
    dropped_by_processors: p.dropped,
    gap_bytes: p.gapBytes,
    connections: p.connections,
    kernel: k,
    ...(source.details ? { capture: source.details() } : {}),
    queue_depth: p.joinPending + outputs.reduce((n, o) => n + o.stats().queued, 0),
    capture_pauses: backpressure.pauses,
    ...(source.yields ? { drain_yields: source.yields() } : {}),
    ...(guarded && source.schedGuard ? { sched: schedFigures(source.schedGuard()) } : {}),
    outputs: Object.fromEntries(outputs.map((o) => [o.name, o.stats()])),
  };
  prev.at = now;
  prev.events = p.events;
  prev.txns = p.transactions;
  return line;
}

/** Start capturing; resolves once attached. Throws CaptureStartError with a clear message. */
export interface AgentOptions {
  /** Write every ring-buffer batch to this file (see capture/recording.ts). */
  record?: string;
}

export function startAgent(config: Config, logger: Logger, { record }: AgentOptions = {}): RunningAgent {
  const log = logger.child({ component: 'agent' });
  if (config.nice !== 0) {
    // before the outputs start their threads: those inherit it
    const { failures } = setProcessNice(config.nice);
    if (failures.length > 0) log.warn({ nice: config.nice, failures: failures.slice(0, 3) }, 'could not set the CPU priority of every agent thread');
  }
  const outputs: Output[] = createOutputs(config, logger);
  // a start that fails releases the outputs (spool locks, connections)
  const abandonOutputs = () => void Promise.all(outputs.map((o) => o.close?.()));
  const processes = createProcessCache();
  const pipeline = createPipeline({ config, outputs, processes, logger, onVerdicts: (v) => source.setVerdicts?.(v) });
  let recorder: Recorder | undefined;
  if (config.mode === 'packet' && record) throw new CaptureStartError('--record writes kernel events: the packet mode has none', undefined);
  let source: CaptureSource & { hooks?: string };
  try {
    source = createSource();
  } catch (err) {
    abandonOutputs();
    throw err;
  }
  function createSource(): CaptureSource & { hooks?: string } {
    if (config.mode === 'packet') return createPacketModeSource(config, logger);
    let opened: ReturnType<typeof openKernelSource>;
    try {
      opened = openKernelSource({
        onBatch: (batch) => recorder?.write(batch),
        ports: kernelPorts(config),
        pids: config.pids,
        infer: config.infer_protocols,
        maxPayload: config.max_payload,
        ringBytes: config.ring_buffer_bytes,
        wakeupBytes: config.wakeup_bytes,
        drainIntervalMs: drainIntervalMs(config, 'kernel'),
        drainMinIntervalMs: drainMinIntervalMs(config, 'kernel'),
        debug: process.env.PBE_LIBBPF_DEBUG === '1',
        onDecodeError: (err) => log.error({ err }, 'bad event batch'),
      }, hookCandidates(config.mode, config.kprobe_variant));
    } catch (err) {
      // auto: when no syscall hook attaches (no BTF, no tracepoints), the packet mode still can
      if (config.mode !== 'auto' || !(err instanceof CaptureStartError) || !hasBpfCapabilities() || record) throw err;
      log.warn({ reason: err.message }, 'no syscall hooks attach: falling back to the packet mode');
      return createPacketModeSource(config, logger);
    }
    for (const a of opened.attempts) log.info({ hooks: a.hooks, reason: a.error }, `${a.hooks} hooks unavailable, trying the next`);
    if (opened.source.degraded.length > 0) {
      log.warn({ programs: opened.source.degraded.map((f) => `${f.program} (${f.code})`) }, 'some optional hooks did not attach; their syscalls are not traced');
    }
    return opened.source;
  }
  // from here on, every way out must detach
  try {
    recorder = record ? createRecorder(record) : undefined;
  } catch (err) {
    source.close();
    abandonOutputs();
    throw new CaptureStartError(`cannot write the recording ${record}: ${(err as Error).message}`, undefined);
  }
  let stopping: Promise<void> | undefined;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const prev = { at: Date.now(), events: 0, txns: 0 };
  const backpressure = { pauses: 0 };
  // sched_idle auto's watcher runs (its figures go in the stats lines)
  let guarded = false;

  // sched_idle auto's budget ran out: said when it happens, at most once a minute
  let throttlesSaid = 0;
  let throttleSaidAt = -Infinity;
  const noteThrottles = () => {
    if (!guarded || !source.schedGuard) return;
    const { throttles } = source.schedGuard();
    if (throttles <= throttlesSaid || Date.now() - throttleSaidAt < THROTTLE_LOG_MS) return;
    log.warn(
      { throttles, since_last: throttles - throttlesSaid, sched_boost_cpu: config.sched_boost_cpu, sched_boost_burst_s: config.sched_boost_burst_s },
      'sched_idle auto: the budget for normal priority is spent; the agent yields the CPU to the applications until it has caught up under SCHED_IDLE, and the kernel drops what it cannot drain (counted: kernel.ringbufDrops)',
    );
    throttlesSaid = throttles;
    throttleSaidAt = Date.now();
  };
  // the pipeline's timers: every TICK_MS while it holds something, every IDLE_TICK_MS
  // while it holds nothing (a batch that leaves it holding brings TICK_MS back)
  let tick: NodeJS.Timeout | undefined;
  let tickMs = 0;
  let ticking = true; // until stop: the last drains after it call onBatchEnd too
  const scheduleTick = (ms: number) => {
    clearTimeout(tick);
    tickMs = ms;
    tick = ticking ? setTimeout(onTick, ms) : undefined;
  };
  const onTick = () => {
    pipeline.tick();
    noteThrottles();
    scheduleTick(pipeline.holding() ? TICK_MS : IDLE_TICK_MS);
  };
  scheduleTick(TICK_MS);
  const statsTimer =
    config.stats_interval_s > 0
      ? setInterval(() => log.info({ stats: statsLine(source, pipeline, outputs, prev, backpressure, guarded) }, 'stats'), config.stats_interval_s * 1000)
      : undefined;

  const stop = (reason: string, code = 0): Promise<void> => {
    stopping ??= (async () => {
      ticking = false;
      clearTimeout(tick);
      if (statsTimer) clearInterval(statsTimer);
      noteThrottles(); // a budget spent while the agent got no CPU to say so
      try {
        // all that the kernel handed over is decoded and published, not just a turn's worth
        const undrained = source.flush(SHUTDOWN_DRAIN_MS);
        pipeline.flush();
        if (undrained > 0) log.warn({ budget_ms: SHUTDOWN_DRAIN_MS, undrained_events: undrained }, 'stopping before the ring buffer was emptied: the events left in it are not reported');
        log.info({ reason, stats: statsLine(source, pipeline, outputs, prev, backpressure, guarded) }, 'stopping');
      } finally {
        source.close();
        recorder?.close();
      }
      await closeOutputs(outputs, SHUTDOWN_FLUSH_MS);
      const final = Object.fromEntries(outputs.map((o) => [o.name, o.stats()]));
      const undelivered = outputs.reduce((n, o) => n + o.stats().dropped, 0);
      const spooled = outputs.reduce((n, o) => n + (o.stats().spool_docs ?? 0), 0);
      if (undelivered > 0 || spooled > 0) log.warn({ undelivered, spooled, outputs: final }, 'documents could not be delivered');
      else log.info({ outputs: final }, 'outputs closed');
      resolveDone(code);
    })();
    return stopping;
  };

  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGHUP', () => void stop('SIGHUP'));
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    source.close();
    void stop('uncaught exception', 1);
  });

  // backpressure: when an output is full, stop draining until it has written its backlog
  let paused = false;
  const sink = {
    onEvent: (e: Parameters<typeof pipeline.onEvent>[0]) => pipeline.onEvent(e),
    onBatchEnd() {
      pipeline.onBatchEnd();
      if (tickMs !== TICK_MS && pipeline.holding()) scheduleTick(TICK_MS);
      const full = outputs.filter((o) => o.full?.());
      if (full.length > 0 && !paused && source.pause) {
        paused = true;
        backpressure.pauses++;
        source.pause();
        void Promise.all(full.map((o) => o.flush())).then(() => {
          paused = false;
          if (!stopping) source.resume?.();
        });
      }
    },
  };
  try {
    source.start(sink);
  } catch (err) {
    source.close();
    abandonOutputs();
    throw err instanceof CaptureStartError ? err : new CaptureStartError(`failed to start capture: ${(err as Error).message}`, undefined);
  }
  if (config.sched_idle === 'auto') {
    // only now: the kernel's programs are loaded and attached (the verifier's work is not left to idle CPU)
    try {
      if (!source.guardSched) throw new Error(`the ${source.mode} capture cannot watch its ring buffer`);
      source.guardSched({
        highBytes: config.ring_buffer_bytes * SCHED_AUTO_HIGH,
        lowBytes: config.ring_buffer_bytes * SCHED_AUTO_LOW,
        holdMs: SCHED_AUTO_HOLD_MS,
        boostShare: config.sched_boost_cpu,
        burstMs: config.sched_boost_burst_s * 1000,
      });
      guarded = true;
    } catch (err) {
      log.warn({ err }, 'sched_idle auto: could not watch the ring buffer; the agent stays at normal priority');
    }
  } else if (config.sched_idle) {
    // only now: the kernel's programs are loaded and attached (the verifier's work is
    // not left to idle CPU), and the threads that exist take it; later ones inherit it
    try {
      const binding = loadBinding();
      const { threads, failures } = setProcessSchedIdle((tid) => binding.setSchedIdle(tid));
      if (failures.length > 0) log.warn({ threads, failures: failures.slice(0, 3) }, 'could not put every agent thread under SCHED_IDLE');
    } catch (err) {
      // capturing already: a missing native helper costs the scheduling policy, not the run
      log.warn({ err }, 'could not put the agent under SCHED_IDLE');
    }
  }
  log.info(
    { mode: source.mode, hooks: source.hooks, ports: kernelPorts(config).map(([p]) => p), pid: process.pid, nice: os.getPriority(), sched_idle: config.sched_idle },
    'capturing',
  );
  return { stop: (reason) => stop(reason), done };
}
