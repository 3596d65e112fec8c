/**
 * JSON text exactly as JSON.stringify gives it, in less time for the agent's
 * documents. Node 20's JSON.stringify examines every character of every string
 * it writes (~3 ns a character here): most of a document's 1.8 KB is text the
 * agent wrote itself and knows needs no escaping (times, ids, addresses), or
 * parts shared by many documents (the process, the host) whose text can be
 * kept. `documentJson` (publish/document.ts) writes those parts as they are
 * and the rest with `jsonValue`; test/unit/publish/json.test.ts holds both to
 * JSON.stringify's output.
 */

/** Characters JSON.stringify writes other than as themselves: quote, backslash, controls, lone surrogates (any surrogate here: paired ones go the slow way). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

/** A number as JSON (NaN and ±Infinity are null; -0 is 0, as String gives it). */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * Any value as JSON.stringify writes it (undefined where it writes nothing:
 * undefined, functions, symbols). Plain objects and arrays are walked here;
 * anything else (a toJSON, a class instance, a boxed primitive, a BigInt's
 * TypeError) is left to JSON.stringify itself.
 */
export function jsonValue(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return jsonString(v);
    case 'number':
      return jsonNumber(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      if (v === null) return 'null';
      if (Array.isArray(v)) return Object.getPrototypeOf(v) === Array.prototype ? jsonArray(v) : JSON.stringify(v);
      return jsonObject(v as Record<string, unknown>);
    case 'bigint':
      return JSON.stringify(v);
    default:
      return undefined;
  }
}

function jsonArray(a: readonly unknown[]): string {
  if (a.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    out += jsonValue(a[i]) ?? 'null';
  }
  return out + ']';
}

function jsonObject(o: Record<string, unknown>): string {
  const proto = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function') return JSON.stringify(o);
  let out = '{';
  // own enumerable string keys in JSON.stringify's order (Object.keys: for-in would add inherited ones)
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const text = jsonValue(o[k]);
    if (text === undefined) continue;
    out += (out.length === 1 ? jsonKey(k) : jsonNextKey(k)) + text;
  }
  return out + '}';
}

// Keys repeat from document to document: their text (with the colon) is kept, up to a bound
// (header names come from the traffic): a lookup costs half the escape test. A key after
// another is kept with its comma: one string fewer to join per key.
const KEY_CACHE_MAX = 4096;
const keyText = new Map<string, string>();
const nextKeyText = new Map<string, string>();

/** `"key":` */
export function jsonKey(k: string): string {
  let text = keyText.get(k);
  if (text === undefined) {
    text = jsonString(k) + ':';
    if (keyText.size < KEY_CACHE_MAX) keyText.set(k, text);
  }
  return text;
}

/**
 * `,"key":` (a key after another). jsonKey's body again, not one helper given
 * the cache: that helper cost ×1.045 [1.013, 1.086] of the pipeline (12 pairs).
 */
export function jsonNextKey(k: string): string {
  let text = nextKeyText.get(k);
  if (text === undefined) {
    text = ',' + jsonString(k) + ':';
    if (nextKeyText.size < KEY_CACHE_MAX) nextKeyText.set(k, text);
  }
  return text;
}

/** Objects many documents share and nobody edits (a process's fields, the host's), with their text. */
const sharedText = new WeakMap<object, string>();

/**
 * Keep `o`'s text: it is shared by documents and never edited after this
 * (processors copy a document before they change it). Returns `o`.
 */
export function shareJson<T extends object>(o: T): T {
  sharedText.set(o, JSON.stringify(o));
  return o;
}

/** The kept text of a shared object, or its text now. */
export function sharedJson(v: unknown): string | undefined {
  if (typeof v === 'object' && v !== null) {
    const kept = sharedText.get(v);
    if (kept !== undefined) return kept;
  }
  return jsonValue(v);
}
