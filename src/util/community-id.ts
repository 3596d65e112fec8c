import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';

/** Bytes of an IPv4 or IPv6 address in network order. */
export function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const out = Buffer.alloc(16);
  let [head, tail] = ip.split('::') as [string, string | undefined];
  if (head.includes('.') || (tail ?? '').includes('.')) {
    // ::ffff:a.b.c.d style: turn the dotted tail into two groups
    const dotted = (s: string) =>
      s.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a, b, c, d) =>
        `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
    head = dotted(head);
    tail = tail === undefined ? undefined : dotted(tail);
  }
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

/**
 * Community ID v1 of a TCP/UDP flow (https://github.com/corelight/community-id-spec):
 * base64(sha1(seed, lower endpoint first, proto, pad, ports)) prefixed with "1:".
 */
export function communityId(
  srcIp: string,
  srcPort: number,
  dstIp: string,
  dstPort: number,
  proto = 6,
  seed = 0,
): string {
  let a = ipBytes(srcIp);
  let b = ipBytes(dstIp);
  let pa = srcPort;
  let pb = dstPort;
  const cmp = Buffer.compare(a, b);
  if (cmp > 0 || (cmp === 0 && pa > pb)) {
    [a, b] = [b, a];
    [pa, pb] = [pb, pa];
  }
  const head = Buffer.alloc(2);
  head.writeUInt16BE(seed);
  const mid = Buffer.from([proto, 0]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(pa, 0);
  ports.writeUInt16BE(pb, 2);
  const digest = createHash('sha1').update(head).update(a).update(b).update(mid).update(ports).digest('base64');
  return `1:${digest}`;
}
