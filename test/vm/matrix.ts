// The QEMU kernel matrix as data: which kernels boot, which agent runs each guest
// does, and the traffic every run must turn into documents. Read by the guest
// runner (inside the VM) and by the host-side test.

/** A Debian kernel: the suite's linux-image-amd64, downloaded by test/vm/vm.sh. */
export interface VmKernel {
  suite: string;
  /** major.minor the suite ships; the test checks the booted kernel against it */
  series: string;
}

export const KERNELS: readonly VmKernel[] = [
  { suite: 'bullseye', series: '5.10' },
  { suite: 'bookworm', series: '6.1' },
  { suite: 'trixie', series: '6.12' },
];

/** One `packetbeat-ebpf run` inside every guest, against the traffic below. */
export interface VmRun {
  /** [a-z0-9-]+: names the run on the console and in the test */
  name: string;
  /** arguments after `run -c CONFIG` */
  args: readonly string[];
  /** fields the agent's "capturing" log line must carry (e.g. its mode) */
  capturing: Readonly<Record<string, unknown>>;
  /** 'both': every document names client and server process (kernel hooks);
   *  'where-attributable': process fields are checked only where present (packet capture) */
  processes: 'both' | 'where-attributable';
  /** kernels (by suite) that must refuse this run: the agent exits non-zero at start with a
   *  message matching the pattern, and leaves nothing loaded */
  refusedOn?: Readonly<Record<string, RegExp>>;
}

export const RUNS: readonly VmRun[] = [
  { name: 'syscall', args: ['--mode', 'syscall'], capturing: { mode: 'syscall', hooks: 'syscall' }, processes: 'both' },
  // 5.10's BTF has struct pt_regs as a forward declaration for the syscall functions'
  // argument: the verifier refuses the fentry programs there (auto then picks kprobes)
  {
    name: 'kprobe-fentry',
    args: ['--mode', 'kprobe', '--kprobe-variant', 'fentry'],
    capturing: { mode: 'kprobe', hooks: 'fentry' },
    processes: 'both',
    refusedOn: { bullseye: /the kprobe mode \(fentry hooks\) cannot run on this kernel/ },
  },
  { name: 'kprobe-kprobe', args: ['--mode', 'kprobe', '--kprobe-variant', 'kprobe'], capturing: { mode: 'kprobe', hooks: 'kprobe' }, processes: 'both' },
  { name: 'packet', args: ['--mode', 'packet'], capturing: { mode: 'packet' }, processes: 'where-attributable' },
];

/** `packetbeat-ebpf check` in every guest, and the capture mode (and hooks) it must choose. */
export interface VmCheck {
  args: readonly string[];
  mode: string;
  hooks?: string;
}

export const CHECK: VmCheck = { args: ['check', '--json'], mode: 'kprobe' };

export const HTTP_PORT = 8080;
export const REDIS_PORT = 6379;

/** One curl process; its paths go over one keep-alive connection, in order. */
export interface HttpCase {
  id: string;
  method: 'GET' | 'POST';
  paths: readonly string[];
  status: number;
}

export const HTTP_CASES: readonly HttpCase[] = [
  { id: 'get', method: 'GET', paths: ['/hello'], status: 200 },
  { id: 'missing', method: 'GET', paths: ['/missing'], status: 404 },
  // nginx's static module answers POST with 405
  { id: 'post', method: 'POST', paths: ['/hello'], status: 405 },
  { id: 'keepalive', method: 'GET', paths: ['/hello?n=1', '/hello?n=2', '/hello?n=3'], status: 200 },
];

/** One redis-cli process per command. */
export interface RedisCase {
  id: string;
  command: readonly string[];
  status: 'OK' | 'Error';
}

export const REDIS_CASES: readonly RedisCase[] = [
  { id: 'set', command: ['SET', 'vm-key', 'hello'], status: 'OK' },
  { id: 'get', command: ['GET', 'vm-key'], status: 'OK' },
  { id: 'incr', command: ['INCR', 'vm-key'], status: 'Error' },
];

/** Documents one run must produce: one per HTTP request and per Redis command. */
export const EXPECTED_DOCUMENTS =
  HTTP_CASES.reduce((n, c) => n + c.paths.length, 0) + REDIS_CASES.length;

/** The agent's configuration in the guest (the run's args come on top). */
export const AGENT_CONFIG = {
  protocols: { http: { ports: [HTTP_PORT] }, redis: { ports: [REDIS_PORT] } },
  // emulated CPUs are slow: generous windows, so a late view is still joined
  join_window_ms: 1000,
  transaction_timeout_ms: 5000,
  stats_interval_s: 0,
};

/** Only these runs, when the kernel command line says `pbe_runs=a,b` (vm.sh: PBE_VM_RUNS). */
export function selectRuns(cmdline: string, runs: readonly VmRun[] = RUNS): readonly VmRun[] {
  const m = /(?:^|\s)pbe_runs=(\S+)/.exec(cmdline);
  if (!m) return runs;
  const names = new Set(m[1].split(','));
  return runs.filter((r) => names.has(r.name));
}
