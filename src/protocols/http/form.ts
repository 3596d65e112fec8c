/**
 * application/x-www-form-urlencoded as Go's net/url does it (Packetbeat's
 * url.query): parse "a=1&b=2", and encode sorted by key with QueryEscape.
 */

function unescape(s: string): string {
  const plus = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus; // malformed escapes are kept as sent
  }
}

/** Pairs in order; a key without "=" has an empty value. */
export function parseForm(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    out.push(eq < 0 ? [unescape(part), ''] : [unescape(part.slice(0, eq)), unescape(part.slice(eq + 1))]);
  }
  return out;
}

const UNRESERVED = /[A-Za-z0-9\-_.~]/;

/** Go's url.QueryEscape: unreserved bytes as is, space as "+", the rest %XX. */
export function queryEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (byte < 0x80 && UNRESERVED.test(ch)) out += ch;
    else if (byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Go's url.Values.Encode: keys sorted, values in order. */
export function encodeForm(pairs: Array<[string, string]>): string {
  const byKey = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    const list = byKey.get(k);
    if (list) list.push(v);
    else byKey.set(k, [v]);
  }
  return [...byKey.keys()]
    .sort()
    .flatMap((k) => byKey.get(k)!.map((v) => `${queryEscape(k)}=${queryEscape(v)}`))
    .join('&');
}
