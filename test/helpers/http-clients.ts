import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AgentRun } from './agent';

export interface ClientRun {
  pid: number;
  code: number | null;
  stdout: string;
  elapsedNs: number;
}

/** Run curl; its pid and the wall time it took (an upper bound for any duration it saw). */
export function curl(args: string[]): Promise<ClientRun> {
  const t0 = process.hrtime.bigint();
  const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}\n', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  return new Promise((resolve) =>
    child.on('exit', (code) => resolve({ pid: child.pid!, code, stdout, elapsedNs: Number(process.hrtime.bigint() - t0) })),
  );
}

export type Doc = Record<string, any>;

/** Documents of one query ("GET /hello") to one server port. */
export const byQuery = (docs: Doc[], port: number, query: string): Doc[] => docs.filter((d) => d.query === query && d.destination?.port === port);

export interface HttpTraffic {
  /** hello, keepalive (one connection, three requests), big (1 MiB), missing (404), nodeBig (chunked 1 MiB), never (no answer). */
  clients: Record<string, ClientRun>;
  /** How long fetch → Node GET /hello took (an upper bound for its durations). */
  fetchNs: number;
}

/**
 * The HTTP integration tests' traffic, the same in every capture mode: curl →
 * nginx (GET /hello, three keep-alive requests on one connection, a 1 MiB file,
 * a 404), curl → the Node server (1 MiB chunked, a request never answered) and
 * fetch → the Node server; returns once the agent reported the last of them.
 */
export async function driveHttpTraffic(agent: AgentRun, nginxPort: number, nodePort: number): Promise<HttpTraffic> {
  const clients: Record<string, ClientRun> = {};
  clients.hello = await curl([`http://127.0.0.1:${nginxPort}/hello`]);
  // one connection, three requests (curl reuses it)
  clients.keepalive = await curl([
    `http://127.0.0.1:${nginxPort}/hello?n=1`,
    `http://127.0.0.1:${nginxPort}/hello?n=2`,
    `http://127.0.0.1:${nginxPort}/hello?n=3`,
  ]);
  clients.big = await curl([`http://127.0.0.1:${nginxPort}/big.bin`]);
  clients.missing = await curl([`http://127.0.0.1:${nginxPort}/missing`]);
  clients.nodeBig = await curl([`http://127.0.0.1:${nodePort}/big`]);
  clients.never = await curl(['--max-time', '1', `http://127.0.0.1:${nodePort}/never`]);
  const t0 = process.hrtime.bigint();
  const res = await fetch(`http://127.0.0.1:${nodePort}/hello`);
  await res.text();
  const fetchNs = Number(process.hrtime.bigint() - t0);
  await agent.waitFor((docs) => docs.some((d) => d.url?.path === '/never'), 8000);
  await agent.waitFor((docs) => docs.some((d) => d.url?.path === '/hello' && d.destination?.port === nodePort));
  return { clients, fetchNs };
}

/** One GET /hello on 127.0.0.1:port through `agent`; resolves once its answer is read. */
export function getHello(port: number, agent: http.Agent): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/hello', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      })
      .on('error', reject);
  });
}

/**
 * GET /hello on 127.0.0.1:port over 16 keep-alive connections, `requests` in all
 * or `limitMs`, whichever comes first. Resolves with the requests answered.
 */
export async function helloLoad(port: number, requests: number, limitMs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const deadline = Date.now() + limitMs;
  let sent = 0;
  let done = 0;
  const one = async () => {
    await getHello(port, agent);
    done++;
  };
  try {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < requests && Date.now() < deadline) {
          sent++;
          await one();
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return done;
}
