/**
 * A rate-limited Redis load generator (redis-benchmark has no rate limit):
 * `connections` connections, each sending one command at a time and waiting
 * `delay` ms after each reply before the next (wrk's paced mode, used by
 * bench/http.ts, works the same way), for `seconds`. Each connection alternates
 * `SET <prefix>:<conn>:<n> v<n>` and `GET <prefix>:<conn>:<n>`, so every reply is
 * known in advance and checked, and every command the agent reports can be
 * matched to the one sent. Latency is from the write of a command to the end
 * of its reply. Prints one JSON line (PacedRedisResult).
 *   node dist/bench/paced-redis.js --port P [--connections 16] [--delay 2] [--seconds 5] [--prefix pbe]
 */
import * as net from 'node:net';
import { arg, runMain } from './common';

export interface PacedRedisResult {
  /** commands answered as expected */
  requests: number;
  /** replies that were not the expected one (counted, not in `requests`) */
  badReplies: number;
  seconds: number;
  rps: number;
  p50us: number;
  p99us: number;
  avgUs: number;
  /** the key prefix: commands were `SET|GET <prefix>:<conn>:<n>` */
  prefix: string;
}

/**
 * One reply at the start of `buf` (RESP2: simple string, error, integer or bulk
 * string, the replies of SET and GET): its text (null for a null bulk string,
 * errors keep their leading '-') and its length in bytes, or undefined while
 * it is incomplete. Throws on anything else (an array, a broken length).
 */
export function readReply(buf: Buffer): { text: string | null; used: number } | undefined {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[0]);
  const line = buf.toString('latin1', 1, eol);
  if (type === '+' || type === ':') return { text: line, used: eol + 2 };
  if (type === '-') return { text: `-${line}`, used: eol + 2 };
  if (type !== '$') throw new Error(`unexpected Redis reply type ${JSON.stringify(type)}`);
  const n = Number(line);
  if (!Number.isInteger(n) || n < -1) throw new Error(`bad bulk length ${JSON.stringify(line)}`);
  if (n === -1) return { text: null, used: eol + 2 };
  const end = eol + 2 + n;
  if (buf.length < end + 2) return undefined;
  if (buf[end] !== 13 || buf[end + 1] !== 10) throw new Error('bulk string not followed by CRLF');
  return { text: buf.toString('latin1', eol + 2, end), used: end + 2 };
}

const quantile = (sorted: Float64Array, q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]);

/** Drive Redis on 127.0.0.1:port; resolves when every connection has finished (bounded by `seconds`, then 5 s for a last reply). */
export async function pacedRedis(options: { port: number; connections: number; delayMs: number; seconds: number; prefix: string }): Promise<PacedRedisResult> {
  const { port, connections, delayMs, seconds, prefix } = options;
  const latencies: number[] = [];
  let badReplies = 0;
  const started = process.hrtime.bigint();
  const stopAt = started + BigInt(Math.round(seconds * 1e9));
  const runConnection = (conn: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      let pending: Buffer = Buffer.alloc(0);
      let n = 0;
      let sentAt = 0n;
      let expect: string | null = null;
      let timer: NodeJS.Timeout | undefined;
      const giveUp = setTimeout(() => finish(new Error(`connection ${conn}: no reply within ${seconds + 5} s`)), (seconds + 5) * 1000);
      const finish = (err?: Error) => {
        clearTimeout(giveUp);
        if (timer) clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve();
      };
      const send = () => {
        if (process.hrtime.bigint() >= stopAt) return finish();
        const key = `${prefix}:${conn}:${n >> 1}`;
        const value = `v${n >> 1}`;
        const args = n % 2 === 0 ? ['SET', key, value] : ['GET', key];
        expect = n % 2 === 0 ? 'OK' : value;
        n++;
        sentAt = process.hrtime.bigint();
        socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
      };
      socket.on('connect', send);
      socket.on('data', (chunk) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let reply;
        try {
          reply = readReply(pending);
        } catch (err) {
          return finish(err as Error);
        }
        if (!reply) return;
        const now = process.hrtime.bigint();
        if (reply.used !== pending.length) return finish(new Error(`connection ${conn}: more than one reply to one command`));
        pending = Buffer.alloc(0);
        if (reply.text === expect) latencies.push(Number(now - sentAt) / 1000);
        else badReplies++;
        timer = setTimeout(send, delayMs);
      });
      socket.on('error', (err) => finish(err));
    });
  await Promise.all(Array.from({ length: connections }, (_, i) => runConnection(i)));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    badReplies,
    seconds: elapsed,
    rps: latencies.length / elapsed,
    p50us: quantile(sorted, 0.5),
    p99us: quantile(sorted, 0.99),
    avgUs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    prefix,
  };
}

if (require.main === module) {
  runMain(async () => {
    const i = process.argv.indexOf('--prefix');
    const prefix = i > 0 ? String(process.argv[i + 1]) : 'pbe';
    if (!/^[\w-]+$/.test(prefix)) throw new Error(`--prefix wants letters, digits, - or _, got ${JSON.stringify(prefix)}`);
    const port = arg('port', NaN);
    if (!Number.isInteger(port)) throw new Error('--port is required');
    const result = await pacedRedis({ port, connections: arg('connections', 16), delayMs: arg('delay', 2), seconds: arg('seconds', 5), prefix });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });
}
