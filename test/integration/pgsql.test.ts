import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { Client } from 'pg';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { startPostgres, type RunningDatabase } from '../helpers/databases';

const PORT = 15442; // not PostgreSQL's default: configured for pgsql below
const INFERRED_PORT = 15443; // configured for nothing: recognised by content
const skip = kernelSkip();

type Doc = Record<string, any>;

function psql(port: number, sql: string): Promise<{ pid: number; code: number | null; out: string }> {
  const child = spawn('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-X', '-v', 'ON_ERROR_STOP=0', '-c', sql], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '5' },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ pid: child.pid!, code, out })));
}

describe('PostgreSQL transactions from the kernel', { skip }, () => {
  let pg: RunningDatabase;
  let pg2: RunningDatabase;
  let agent: AgentRun;
  const clients: Record<string, number> = {};

  before(async () => {
    pg = await startPostgres(PORT);
    pg2 = await startPostgres(INFERRED_PORT);
    agent = await startAgent({ protocols: { pgsql: { ports: [PORT] } }, stats_interval_s: 0, join_window_ms: 300 });
    clients.setup = (await psql(PORT, 'CREATE TABLE items (id int primary key, name text); INSERT INTO items VALUES (1, \'a\'), (2, \'b\'), (3, \'c\')')).pid;
    clients.select = (await psql(PORT, 'SELECT id, name FROM items ORDER BY id')).pid;
    clients.failing = (await psql(PORT, 'SELECT * FROM no_such_table')).pid;
    // the Node client: a prepared statement three times, an UPDATE, a failing one
    const client = new Client({ host: '127.0.0.1', port: PORT, user: 'postgres', database: 'postgres' });
    await client.connect();
    for (const id of [1, 2, 3]) await client.query({ name: 'by_id', text: 'SELECT name FROM items WHERE id = $1', values: [id] });
    await client.query('UPDATE items SET name = $1 WHERE id > $2', ['z', 1]);
    await client.query('SELECT 1/0').catch(() => undefined);
    // a pipelined batch: several queries sent before any answer is read
    await Promise.all([client.query('SELECT 10'), client.query('SELECT 20'), client.query('SELECT 30')]);
    await client.end();
    // a server on a port nobody configured
    clients.inferred = (await psql(INFERRED_PORT, 'SELECT 42 AS answer')).pid;
    await agent.waitFor((docs) => docs.filter((d) => d.type === 'pgsql').length >= 13, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    agent.child.kill('SIGINT');
    await agent.exited;
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await pg?.stop();
    await pg2?.stop();
  });

  const pgDocs = () => agent.docs.filter((d) => d.type === 'pgsql');
  const one = (query: string, port = PORT): Doc => {
    const found = pgDocs().filter((d) => d.query === query && d.destination.port === port);
    assert.equal(found.length, 1, `${query}: ${JSON.stringify(pgDocs().map((d) => d.query))}`);
    return found[0];
  };

  test('psql: a multi-statement query is one transaction per statement, with rows', () => {
    const create = one('CREATE TABLE items (id int primary key, name text)');
    assert.equal(create.method, 'CREATE');
    const insert = one("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    assert.equal(insert.method, 'INSERT');
    assert.equal(insert.status, 'OK');
    assert.equal(insert.pgsql.rows_affected, 3);
    const select = one('SELECT id, name FROM items ORDER BY id');
    assert.equal(select.pgsql.num_rows, 3);
    assert.equal(select.pgsql.num_fields, 2);
    for (const d of [create, insert]) assert.equal(d.source.process.pid, clients.setup);
    assert.equal(select.source.process.pid, clients.select);
  });

  test('the client is psql and the server is a backend of our postmaster', () => {
    const d = one('SELECT id, name FROM items ORDER BY id');
    assert.equal(d.source.process.name, 'psql');
    assert.equal(d.destination.process.name, 'postgres');
    assert.equal(d.destination.process.parent.pid, pg.pid);
    assert.deepEqual(d.packetbeat_ebpf.views, ['client', 'server']);
    assert.equal(d.db.system, 'postgresql');
    assert.equal(d.db.name, 'postgres');
    assert.ok(d.event.duration > 0 && d.packetbeat_ebpf.server_duration <= d.event.duration);
  });

  test('a failing query carries the SQLSTATE and message', () => {
    const d = one('SELECT * FROM no_such_table');
    assert.equal(d.status, 'Error');
    assert.equal(d.pgsql.error_code, '42P01');
    assert.match(d.pgsql.error_message, /relation "no_such_table" does not exist/);
    assert.equal(d.pgsql.error_severity, 'ERROR');
    assert.equal(d.source.process.pid, clients.failing);
  });

  test("node-postgres: a prepared statement executed three times is three transactions with its SQL", () => {
    const runs = pgDocs().filter((d) => d.query === 'SELECT name FROM items WHERE id = $1');
    assert.equal(runs.length, 3);
    for (const d of runs) {
      assert.equal(d.source.process.pid, process.pid);
      assert.equal(d.source.process.name, 'node');
      assert.equal(d.pgsql.num_rows, 1);
      assert.equal(d.status, 'OK');
    }
    const update = one('UPDATE items SET name = $1 WHERE id > $2');
    assert.equal(update.pgsql.rows_affected, 2);
    const failed = one('SELECT 1/0');
    assert.equal(failed.status, 'Error');
    assert.equal(failed.pgsql.error_code, '22012');
  });

  test('a pipelined batch pairs every answer with its query', () => {
    for (const n of [10, 20, 30]) {
      const d = one(`SELECT ${n}`);
      assert.equal(d.status, 'OK');
      assert.equal(d.pgsql.num_rows, 1);
    }
  });

  test('PostgreSQL on an unconfigured port is recognised by content', () => {
    const d = one('SELECT 42 AS answer', INFERRED_PORT);
    assert.equal(d.source.process.pid, clients.inferred);
    assert.equal(d.destination.process.parent.pid, pg2.pid);
    assert.equal(d.pgsql.num_rows, 1);
  });

  test('no password or startup noise is a transaction', () => {
    for (const d of pgDocs()) {
      assert.ok(d.query && d.method, JSON.stringify(d));
      assert.doesNotMatch(JSON.stringify(d), /md5[0-9a-f]{32}|SCRAM/);
    }
  });
});
