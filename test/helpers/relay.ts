import * as fs from 'node:fs';
import * as net from 'node:net';

/** One chunk of a recorded TCP conversation. */
export interface StreamChunk {
  /** Which end sent it. */
  from: 'client' | 'server';
  /** Nanoseconds since the recording began. */
  t: number;
  /** The bytes, base64. */
  data: string;
}

/** A recorded conversation: every connection's chunks, in order. */
export interface StreamFixture {
  description: string;
  connections: StreamChunk[][];
}

export interface Relay {
  port: number;
  /** Stop relaying and return what was recorded. */
  stop(): Promise<StreamFixture>;
}

/**
 * A TCP relay on 127.0.0.1 that records what real clients and servers say to
 * each other (byte streams exactly as the sockets delivered them).
 */
export async function startRelay(targetPort: number, description: string, listenPort = 0): Promise<Relay> {
  const connections: StreamChunk[][] = [];
  const t0 = process.hrtime.bigint();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const chunks: StreamChunk[] = [];
    connections.push(chunks);
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const log = (from: 'client' | 'server') => (d: Buffer) =>
      chunks.push({ from, t: Number(process.hrtime.bigint() - t0), data: d.toString('base64') });
    client.on('data', log('client'));
    upstream.on('data', log('server'));
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      return { description, connections };
    },
  };
}

export function writeFixture(file: string, fixture: StreamFixture): void {
  fs.writeFileSync(file, JSON.stringify(fixture, null, 1) + '\n');
}

export function readFixture(file: string): StreamFixture {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as StreamFixture;
}

/** Bytes of a chunk. */
export function chunkBytes(c: StreamChunk): Buffer {
  return Buffer.from(c.data, 'base64');
}
