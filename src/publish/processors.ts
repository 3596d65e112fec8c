/**
 * A subset of Beats processors on transaction documents: drop_event,
 * drop_fields and include_fields, each with an optional `when` condition
 * (equals, contains, regexp, range, has_fields, and, or, not).
 */
import { z } from 'zod';

type Doc = Record<string, unknown>;

const fieldMap = z.record(z.string(), z.unknown());

export type Condition =
  | { equals: Record<string, unknown> }
  | { contains: Record<string, unknown> }
  | { regexp: Record<string, unknown> }
  | { range: Record<string, unknown> }
  | { has_fields: string[] }
  | { and: Condition[] }
  | { or: Condition[] }
  | { not: Condition };

export const conditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.strictObject({ equals: fieldMap }),
    z.strictObject({ contains: fieldMap }),
    z.strictObject({ regexp: fieldMap }),
    z.strictObject({ range: fieldMap }),
    z.strictObject({ has_fields: z.array(z.string()) }),
    z.strictObject({ and: z.array(conditionSchema) }),
    z.strictObject({ or: z.array(conditionSchema) }),
    z.strictObject({ not: conditionSchema }),
  ]),
);

export const processorSchema = z.union([
  z.strictObject({ drop_event: z.strictObject({ when: conditionSchema.optional() }) }),
  z.strictObject({
    drop_fields: z.strictObject({ fields: z.array(z.string()).min(1), when: conditionSchema.optional(), ignore_missing: z.boolean().optional() }),
  }),
  z.strictObject({ include_fields: z.strictObject({ fields: z.array(z.string()).min(1), when: conditionSchema.optional() }) }),
]);

export type ProcessorConfig = z.infer<typeof processorSchema>;

/** The value at a dotted path ("http.response.status_code"), or undefined. */
export function getField(doc: Doc, dotted: string): unknown {
  let cur: unknown = doc;
  const parts = dotted.split('.');
  for (let i = 0; i < parts.length; i++) {
    if (cur === null || typeof cur !== 'object') return undefined;
    const obj = cur as Doc;
    // a key may itself contain dots (header names): try the longest match first
    let found = false;
    for (let j = parts.length; j > i; j--) {
      const key = parts.slice(i, j).join('.');
      if (key in obj) {
        cur = obj[key];
        i = j - 1;
        found = true;
        break;
      }
    }
    if (!found) return undefined;
  }
  return cur;
}

function deleteField(doc: Doc, dotted: string): void {
  const parts = dotted.split('.');
  let cur: unknown = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    if (cur === null || typeof cur !== 'object') return;
    cur = (cur as Doc)[parts[i]];
  }
  if (cur !== null && typeof cur === 'object') delete (cur as Doc)[parts[parts.length - 1]];
}

function setField(doc: Doc, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[parts[i]] = {};
    cur = cur[parts[i]] as Doc;
  }
  cur[parts[parts.length - 1]] = value;
}

const RANGE_OPS: Record<string, (a: number, b: number) => boolean> = {
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
};

function rangeHolds(doc: Doc, spec: Record<string, unknown>): boolean {
  for (const [key, bound] of Object.entries(spec)) {
    // {"field.lt": 300} or {"field": {"lt": 300}}
    const ops: Array<[string, string, unknown]> = [];
    if (bound !== null && typeof bound === 'object') for (const [op, v] of Object.entries(bound as Doc)) ops.push([key, op, v]);
    else {
      const dot = key.lastIndexOf('.');
      ops.push([key.slice(0, dot), key.slice(dot + 1), bound]);
    }
    for (const [field, op, v] of ops) {
      const value = getField(doc, field);
      const test = RANGE_OPS[op];
      if (!test || typeof value !== 'number' || typeof v !== 'number' || !test(value, v)) return false;
    }
  }
  return true;
}

export function matches(doc: Doc, c: Condition): boolean {
  if ('equals' in c) return Object.entries(c.equals).every(([f, v]) => getField(doc, f) === v);
  if ('contains' in c) return Object.entries(c.contains).every(([f, v]) => String(getField(doc, f) ?? '').includes(String(v)));
  if ('regexp' in c) return Object.entries(c.regexp).every(([f, v]) => new RegExp(String(v)).test(String(getField(doc, f) ?? '')));
  if ('range' in c) return rangeHolds(doc, c.range);
  if ('has_fields' in c) return c.has_fields.every((f) => getField(doc, f) !== undefined);
  if ('and' in c) return c.and.every((x) => matches(doc, x));
  if ('or' in c) return c.or.some((x) => matches(doc, x));
  return !matches(doc, c.not);
}

/** Fields every document keeps through include_fields (as Beats does). */
const ALWAYS_KEPT = ['@timestamp', 'type'];

/** Run the processors in order; undefined when the document is dropped. */
export function applyProcessors(doc: Doc, processors: readonly ProcessorConfig[]): Doc | undefined {
  if (processors.length === 0) return doc;
  // documents share per-process and per-host parts: never edit them in place
  let out = processors.some((p) => 'drop_fields' in p) ? structuredClone(doc) : doc;
  for (const p of processors) {
    if ('drop_event' in p) {
      if (!p.drop_event.when || matches(out, p.drop_event.when)) return undefined;
    } else if ('drop_fields' in p) {
      if (!p.drop_fields.when || matches(out, p.drop_fields.when)) for (const f of p.drop_fields.fields) deleteField(out, f);
    } else if (!p.include_fields.when || matches(out, p.include_fields.when)) {
      const kept: Doc = {};
      for (const f of [...ALWAYS_KEPT, ...p.include_fields.fields]) {
        const v = getField(out, f);
        if (v !== undefined) setField(kept, f, v);
      }
      out = kept;
    }
  }
  return out;
}
