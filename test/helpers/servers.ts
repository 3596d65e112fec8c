import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const BIG_FILE_BYTES = 1024 * 1024;

/** Resolve once something accepts connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RunningServer {
  pid: number;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

/** nginx from the distribution, one process (master_process off), serving www/. */
export async function startNginx(port: number): Promise<RunningServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-nginx-'));
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  fs.writeFileSync(path.join(www, 'hello'), 'hello from nginx\n');
  fs.writeFileSync(path.join(www, 'big.bin'), Buffer.alloc(BIG_FILE_BYTES, 0x61));
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000;
  server {
    listen 127.0.0.1:${port};
    root ${www};
    default_type text/plain;
  }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port);
  return { pid: child.pid!, port, dir, stop: stopper(child, dir) };
}

/** A Node HTTP server: /hello, /big (1 MiB, chunked), /never (never answers), /missing → 404. */
export async function startNodeServer(port: number): Promise<RunningServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-node-'));
  const script = path.join(dir, 'server.js');
  fs.writeFileSync(
    script,
    `const http = require('node:http');
const big = Buffer.alloc(${BIG_FILE_BYTES}, 0x62);
http.createServer((req, res) => {
  req.resume();
  if (req.url === '/hello') { res.setHeader('content-type', 'text/plain'); res.end('hello from node\\n'); }
  else if (req.url === '/big') { res.write(big.subarray(0, 1000)); res.end(big.subarray(1000)); }
  else if (req.url === '/never') { /* never answers */ }
  else { res.statusCode = 404; res.end('not found\\n'); }
}).listen(${port}, '127.0.0.1');
`,
  );
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port);
  return { pid: child.pid!, port, dir, stop: stopper(child, dir) };
}
