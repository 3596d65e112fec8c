import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import * as mysql from 'mysql2/promise';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { startMariadb, type RunningDatabase } from '../helpers/databases';

const PORT = 13316; // not MySQL's default: configured for mysql below
const INFERRED_PORT = 13317; // configured for nothing: recognised by content
const skip = kernelSkip();

type Doc = Record<string, any>;

/** The mysql CLI in batch mode, going on after errors. */
function mysqlCli(sql: string): Promise<{ pid: number; code: number | null }> {
  const child = spawn('mysql', ['-h', '127.0.0.1', '-P', String(PORT), '-uroot', '--force'], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.end(sql);
  return new Promise((resolve) => child.on('exit', (code) => resolve({ pid: child.pid!, code })));
}

describe('MySQL/MariaDB transactions from the kernel', { skip }, () => {
  let db: RunningDatabase;
  let db2: RunningDatabase;
  let agent: AgentRun;
  let cliPid = 0;
  let inferredPid = 0;

  before(async () => {
    db = await startMariadb(PORT);
    db2 = await startMariadb(INFERRED_PORT);
    agent = await startAgent({ protocols: { mysql: { ports: [PORT] } }, stats_interval_s: 0, join_window_ms: 300 });
    cliPid = (
      await mysqlCli(
        [
          'CREATE DATABASE shop;',
          'USE shop;',
          'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20));',
          "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');",
          "UPDATE items SET name = 'z' WHERE id > 1;",
          'SELECT id, name FROM items ORDER BY id;',
          'SELECT * FROM no_such_table;',
        ].join('\n'),
      )
    ).pid;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: PORT, user: 'root', database: 'shop' });
    for (const id of [1, 2, 3]) await conn.execute('SELECT name FROM items WHERE id = ?', [id]);
    await conn.query('SELECT nope FROM items').catch(() => undefined);
    // several queries in flight on one connection
    await Promise.all([conn.query('SELECT 10'), conn.query('SELECT 20'), conn.query('SELECT 30')]);
    await conn.end();
    inferredPid = await new Promise<number>((resolve) => {
      const c = spawn('mysql', ['-h', '127.0.0.1', '-P', String(INFERRED_PORT), '-uroot', '-e', 'SELECT 42 AS answer'], { stdio: 'ignore' });
      c.on('exit', () => resolve(c.pid!));
    });
    await agent.waitFor((docs) => docs.some((d) => d.query === 'SELECT 30') && docs.some((d) => d.query === 'SELECT 42 AS answer'), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    agent.child.kill('SIGINT');
    await agent.exited;
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await db?.stop();
    await db2?.stop();
  });

  const myDocs = () => agent.docs.filter((d) => d.type === 'mysql');
  const one = (query: string, debug = false): Doc => {
    const found = myDocs().filter((d) => d.query === query);
    assert.equal(found.length, 1, debug ? JSON.stringify(found, null, 1) : `${query}: ${JSON.stringify(myDocs().map((d) => d.query))}`);
    return found[0];
  };

  test('the mysql CLI: statements with rows and affected rows, client and server processes', () => {
    const insert = one("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    assert.equal(insert.method, 'INSERT');
    assert.equal(insert.mysql.affected_rows, 3);
    assert.equal(one("UPDATE items SET name = 'z' WHERE id > 1").mysql.affected_rows, 2);
    const select = one('SELECT id, name FROM items ORDER BY id');
    assert.equal(select.mysql.num_rows, 3);
    assert.equal(select.mysql.num_fields, 2);
    assert.equal(select.status, 'OK');
    assert.equal(select.source.process.pid, cliPid);
    assert.match(select.source.process.name, /^(mysql|mariadb)$/);
    assert.equal(select.destination.process.pid, db.pid);
    assert.equal(select.destination.process.name, 'mariadbd');
    assert.deepEqual(select.packetbeat_ebpf.views, ['client', 'server']);
    assert.equal(select.db.system, 'mysql');
  });

  test('a failing query carries the error code and SQLSTATE message', () => {
    const d = one('SELECT * FROM no_such_table');
    assert.equal(d.status, 'Error');
    assert.equal(d.mysql.error_code, 1146);
    assert.match(d.mysql.error_message, /^42S02: Table 'shop.no_such_table' doesn't exist/);
  });

  test('mysql2: a prepared statement executed three times carries its SQL each time', () => {
    const sql = 'SELECT name FROM items WHERE id = ?';
    const prepare = myDocs().filter((d) => d.query === sql && d.method === 'PREPARE');
    assert.equal(prepare.length, 1);
    const runs = myDocs().filter((d) => d.query === sql && d.method === 'SELECT');
    assert.equal(runs.length, 3, JSON.stringify(myDocs().map((d) => [d.method, d.query])));
    runs.forEach((d, i) => {
      assert.equal(d.source.process.pid, process.pid);
      assert.equal(d.mysql.num_rows, 1);
      assert.match(JSON.stringify(d.params), new RegExp(String(i + 1)), 'the bound value');
    });
    assert.equal(one('SELECT nope FROM items').status, 'Error');
  });

  test('queries in flight together are paired in order', () => {
    for (const n of [10, 20, 30]) {
      const d = one(`SELECT ${n}`);
      assert.equal(d.status, 'OK');
      assert.equal(d.mysql.num_rows, 1);
    }
  });

  test('MariaDB on an unconfigured port is recognised by content (the server speaks first)', () => {
    const d = one('SELECT 42 AS answer', true);
    assert.equal(d.destination.port, INFERRED_PORT);
    assert.equal(d.source.process.pid, inferredPid);
    assert.equal(d.destination.process.pid, db2.pid);
    assert.equal(d.mysql.num_rows, 1);
  });

  test('the handshake is no transaction and no credential is exported', () => {
    for (const d of myDocs()) {
      assert.ok(d.query, JSON.stringify(d));
      assert.doesNotMatch(JSON.stringify(d), /mysql_native_password|auth_response/);
    }
  });
});
