import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RunningDatabase {
  port: number;
  /** The server's main process (PostgreSQL's postmaster forks a backend per connection). */
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`);
}

async function waitFor(what: string, ready: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs} ms`);
    await sleep(200);
  }
}

async function stopChild(child: ChildProcess, before?: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  if (before) before();
  else child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A private PostgreSQL 15 (Debian's package) on 127.0.0.1:port, trust authentication. */
export async function startPostgres(port: number, { ssl = false }: { ssl?: boolean } = {}): Promise<RunningDatabase> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pgsql-'));
  const data = path.join(dir, 'data');
  fs.chmodSync(dir, 0o755);
  mustRun('chown', ['postgres:postgres', dir]);
  mustRun('runuser', ['-u', 'postgres', '--', `${PG_BIN}/initdb`, '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  if (ssl) {
    const key = path.join(data, 'server.key');
    const crt = path.join(data, 'server.crt');
    mustRun('openssl', ['req', '-new', '-x509', '-days', '1', '-nodes', '-subj', '/CN=localhost', '-keyout', key, '-out', crt]);
    mustRun('chown', ['postgres:postgres', key, crt]);
    fs.chmodSync(key, 0o600);
  }
  const child = spawn(
    'runuser',
    ['-u', 'postgres', '--', `${PG_BIN}/postgres`, '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', `ssl=${ssl ? 'on' : 'off'}`, '-c', 'fsync=off'],
    { stdio: 'ignore' },
  );
  await waitFor(`postgres on ${port}`, () => spawnSync('pg_isready', ['-h', '127.0.0.1', '-p', String(port)]).status === 0);
  const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    port,
    pid,
    dir,
    async stop() {
      // runuser forwards signals; a fast shutdown does not wait for clients
      await stopChild(child, () => spawnSync('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', data, '-m', 'fast', 'stop']));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A private MariaDB (Debian's mariadb-server) on 127.0.0.1:port, root without password. */
export async function startMariadb(port: number): Promise<RunningDatabase> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-mariadb-'));
  const data = path.join(dir, 'data');
  mustRun('mariadb-install-db', ['--user=root', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db']);
  const child = spawn(
    'mariadbd',
    [
      '--no-defaults',
      '--user=root',
      `--datadir=${data}`,
      `--socket=${path.join(dir, 's.sock')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      `--pid-file=${path.join(dir, 'pid')}`,
      '--skip-log-bin',
    ],
    { stdio: 'ignore' },
  );
  await waitFor(`mariadbd on ${port}`, () => spawnSync('mysql', ['-h', '127.0.0.1', '-P', String(port), '-uroot', '-e', 'select 1']).status === 0);
  return {
    port,
    pid: child.pid!,
    dir,
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A private redis-server (Debian's package) on 127.0.0.1:port, nothing persisted. */
export async function startRedis(port: number): Promise<RunningDatabase> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await waitFor(`redis-server on ${port}`, () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG');
  return {
    port,
    pid: child.pid!,
    dir,
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
