/**
 * The decoder's view of `struct pbe_event` (bpf/capture.h). The addon reports
 * the layout its build sees; `checkLayout` refuses to start when they differ,
 * so kernel, addon and TypeScript can never drift silently.
 */
export const EVENT_HEADER_SIZE = 128;

/** Data events an undecided socket may send while its verdict is on its way (PBE_INFER_EVENTS). */
export const INFER_EVENTS = 64;

export const EVENT_FIELDS = {
  ts_ns: { offset: 0, size: 8 },
  enter_ns: { offset: 8, size: 8 },
  cgroup_id: { offset: 16, size: 8 },
  sock_id: { offset: 24, size: 8 },
  tgid: { offset: 32, size: 4 },
  tid: { offset: 36, size: 4 },
  ppid: { offset: 40, size: 4 },
  uid: { offset: 44, size: 4 },
  len: { offset: 48, size: 4 },
  cap_len: { offset: 52, size: 4 },
  seq: { offset: 56, size: 4 },
  fd: { offset: 60, size: 4 },
  saddr: { offset: 64, size: 16 },
  daddr: { offset: 80, size: 16 },
  sport: { offset: 96, size: 2 },
  dport: { offset: 98, size: 2 },
  kind: { offset: 100, size: 1 },
  dir: { offset: 101, size: 1 },
  family: { offset: 102, size: 1 },
  source: { offset: 103, size: 1 },
  comm: { offset: 104, size: 16 },
  netns: { offset: 120, size: 4 },
  tail_len: { offset: 124, size: 4 },
} as const;

export type EventField = keyof typeof EVENT_FIELDS;

/** enum pbe_kind */
export const EventKind = { DATA: 1, CONNECT: 2, ACCEPT: 3, CLOSE: 4, EXEC: 5 } as const;

/** EXEC payload: NUL-terminated path in the first EXEC_FILENAME bytes, then argv. */
export const EXEC_FILENAME = 256;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

/** enum pbe_verdict_kind: what user space tells the kernel about a socket. */
export const Verdict = { track: 1, ignore: 2, shadow: 3 } as const;
export type VerdictName = keyof typeof Verdict;

/** enum pbe_dir */
export const EventDir = { EGRESS: 0, INGRESS: 1 } as const;
export type EventDir = (typeof EventDir)[keyof typeof EventDir];

/** enum pbe_counter, in order. */
export const COUNTER_NAMES = [
  'events',
  'ringbufDrops',
  'truncated',
  'bytes',
  'inflightFull',
  'readErrors',
  'filtered',
] as const;
export type KernelCounters = Record<(typeof COUNTER_NAMES)[number], number>;

export interface AddonLayout {
  fields: Record<string, { offset: number; size: number }>;
  headerSize: number;
  payloadLimit: number;
  payloadDefault: number;
  tailLimit: number;
  inferEvents: number;
  counterCount: number;
  verdicts: Record<VerdictName, number>;
}

/** Differences between the addon's layout and ours; empty when they agree. */
export function layoutMismatches(addon: AddonLayout): string[] {
  const out: string[] = [];
  if (addon.headerSize !== EVENT_HEADER_SIZE) {
    out.push(`header size ${addon.headerSize} != ${EVENT_HEADER_SIZE}`);
  }
  if (addon.inferEvents !== INFER_EVENTS) out.push(`inference events ${addon.inferEvents} != ${INFER_EVENTS}`);
  for (const [name, value] of Object.entries(Verdict)) {
    if (addon.verdicts?.[name as VerdictName] !== value) out.push(`verdict ${name} ${addon.verdicts?.[name as VerdictName]} != ${value}`);
  }
  if (addon.counterCount !== COUNTER_NAMES.length) {
    out.push(`counter count ${addon.counterCount} != ${COUNTER_NAMES.length}`);
  }
  const names = new Set([...Object.keys(addon.fields), ...Object.keys(EVENT_FIELDS)]);
  for (const name of names) {
    const ours = (EVENT_FIELDS as Record<string, { offset: number; size: number }>)[name];
    const theirs = addon.fields[name];
    if (!ours || !theirs) {
      out.push(`field ${name} only on the ${ours ? 'TypeScript' : 'addon'} side`);
    } else if (ours.offset !== theirs.offset || ours.size !== theirs.size) {
      out.push(`field ${name} at ${theirs.offset}/${theirs.size}, decoder expects ${ours.offset}/${ours.size}`);
    }
  }
  return out;
}

export function checkLayout(addon: AddonLayout): void {
  const bad = layoutMismatches(addon);
  if (bad.length > 0) {
    throw new Error(`event layout mismatch between addon and decoder (rebuild both): ${bad.join('; ')}`);
  }
}
