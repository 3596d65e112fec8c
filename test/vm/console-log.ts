// What the guest prints on the serial console and how the host reads it back.
// Every line of ours starts with MARK, a tag and a run name ('-' for none), so
// kernel messages or a torn line cannot be mistaken for a document.

export const MARK = '@@pbe-vm';

export type Doc = Record<string, any>;

/** A client process the guest started, and how it ended. */
export interface ClientResult {
  id: string;
  pid: number;
  exit: number | null;
  /** curl's %{http_code} lines or redis-cli's reply */
  output: string;
}

export interface RunResult {
  name: string;
  args: string[];
  docs: Doc[];
  /** the agent's stderr (JSON log lines) */
  stderr: string[];
  clients: ClientResult[];
  /** undefined: no `end` line (the guest died or was cut off) */
  end?: { exit: number | null; signal: string | null; elapsedMs: number; capturingMs?: number };
  /** BPF programs still loaded after the agent exited (bpftool), by id:name */
  programsAfter?: string[];
}

export interface GuestReport {
  /** uptimeS: the guest's uptime when the runner started; nodeStartMs: `node -e 0` */
  start?: { release: string; uptimeS: number; nodeStartMs: number };
  check?: { args: string[]; exit: number | null; stdout: string; stderr: string; elapsedMs: number };
  /** programsBefore: BPF programs the kernel had loaded before any run */
  servers?: { nginx: number; redis: number; elapsedMs: number; programsBefore: string[] };
  runs: Map<string, RunResult>;
  errors: string[];
  dmesg: string[];
  done: boolean;
  poweroff: boolean;
  /** lines that carried MARK but could not be read (a torn console line) */
  unreadable: string[];
}

/** One console line: MARK tag run payload. */
export function formatLine(tag: string, run: string, payload: unknown): string {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return `${MARK} ${tag} ${run} ${text}\n`;
}

function runOf(report: GuestReport, name: string): RunResult {
  let r = report.runs.get(name);
  if (!r) {
    r = { name, args: [], docs: [], stderr: [], clients: [] };
    report.runs.set(name, r);
  }
  return r;
}

/** Read the serial console's text back into what happened in the guest. */
export function parseConsole(text: string): GuestReport {
  const report: GuestReport = { runs: new Map(), errors: [], dmesg: [], done: false, poweroff: false, unreadable: [] };
  for (const raw of text.split('\n')) {
    const at = raw.indexOf(`${MARK} `);
    if (at < 0) continue;
    const line = raw.slice(at + MARK.length + 1).replace(/\r$/, '');
    const m = /^(\S+) (\S+) ?(.*)$/.exec(line);
    if (!m) {
      report.unreadable.push(raw);
      continue;
    }
    const [, tag, run, payload] = m;
    try {
      switch (tag) {
        case 'start':
          report.start = JSON.parse(payload);
          break;
        case 'check':
          report.check = JSON.parse(payload);
          break;
        case 'servers':
          report.servers = JSON.parse(payload);
          break;
        case 'begin':
          runOf(report, run).args = JSON.parse(payload).args;
          break;
        case 'doc':
          runOf(report, run).docs.push(JSON.parse(payload));
          break;
        case 'stderr':
          runOf(report, run).stderr.push(payload);
          break;
        case 'client':
          runOf(report, run).clients.push(JSON.parse(payload));
          break;
        case 'end':
          runOf(report, run).end = JSON.parse(payload);
          break;
        case 'programs':
          runOf(report, run).programsAfter = JSON.parse(payload);
          break;
        case 'error':
          report.errors.push(payload);
          break;
        case 'dmesg':
          report.dmesg.push(payload);
          break;
        case 'done':
          report.done = true;
          break;
        case 'poweroff':
          report.poweroff = true;
          break;
        default:
          // runner-exit and the like: informational
          break;
      }
    } catch {
      report.unreadable.push(raw);
    }
  }
  return report;
}

/** Features, mode and (kprobe mode) hooks from `packetbeat-ebpf check`, in its text or its JSON form. */
export function readCheck(stdout: string): { features: Map<string, boolean>; mode?: string; hooks?: string } {
  const features = new Map<string, boolean>();
  const trimmed = stdout.trim();
  if (trimmed.startsWith('{')) {
    const j = JSON.parse(trimmed) as { features?: Array<{ name: string; available: boolean }>; mode?: string; hooks?: string };
    for (const f of j.features ?? []) features.set(f.name, f.available);
    return { features, mode: j.mode, hooks: j.hooks };
  }
  for (const line of trimmed.split('\n')) {
    const f = /^\s+(yes|no)\s+(\S.*?)(?:\s{2,}|$)/.exec(line);
    if (f) features.set(f[2], f[1] === 'yes');
  }
  const m = /^capture mode: (\S+)(?: with (\S+) hooks)?/m.exec(trimmed);
  return { features, mode: m?.[1], hooks: m?.[2] };
}
