import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import Redis from 'ioredis';
import { kernelSkip, startAgent, type AgentRun } from '../helpers/agent';
import { startRedis, type RunningDatabase } from '../helpers/databases';

const PORT = 16389; // not Redis's default: configured for redis below
const INFERRED_PORT = 16390; // configured for nothing: recognised by content
const skip = kernelSkip();

type Doc = Record<string, any>;

function redisCli(args: string[], input?: string): Promise<number> {
  const child = spawn('redis-cli', ['-p', String(PORT), ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.end(input ?? '');
  return new Promise((resolve) => child.on('exit', () => resolve(child.pid!)));
}

describe('Redis transactions from the kernel', { skip }, () => {
  let db: RunningDatabase;
  let db2: RunningDatabase;
  let agent: AgentRun;
  const pids: Record<string, number> = {};

  before(async () => {
    db = await startRedis(PORT);
    db2 = await startRedis(INFERRED_PORT);
    agent = await startAgent({ protocols: { redis: { ports: [PORT] } }, stats_interval_s: 0, join_window_ms: 300 });
    pids.set = await redisCli(['SET', 'greeting', 'hello']);
    pids.get = await redisCli(['GET', 'greeting']);
    pids.error = await redisCli(['INCR', 'greeting']);
    // a pipelined batch: every command written before any reply is read
    pids.pipe = await redisCli(['--pipe'], ['RPUSH list a', 'RPUSH list b', 'LRANGE list 0 -1', 'LPOP list'].map((l) => `${l}\r\n`).join(''));
    const client = new Redis({ port: PORT, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    // a connection error fails the test with its message instead of an unhandled event
    const errors: Error[] = [];
    client.on('error', (e: Error) => errors.push(e));
    await client.connect();
    await client.pipeline().set('k1', 'v1').set('k2', 'v2').mget('k1', 'k2').exec();
    // pub/sub: the pushed message is no reply to anything
    const sub = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    sub.on('error', (e: Error) => errors.push(e));
    const got = new Promise<string>((resolve) => sub.on('message', (_c: string, m: string) => resolve(m)));
    await sub.subscribe('news');
    await client.publish('news', 'extra');
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('(no message within 5 s)'), 5000).unref());
    assert.equal(await Promise.race([got, timeout]), 'extra');
    await client.get('k1');
    sub.disconnect();
    client.disconnect();
    assert.deepEqual(errors.map((e) => e.message), []);
    pids.inferred = await new Promise<number>((resolve) => {
      const c = spawn('redis-cli', ['-p', String(INFERRED_PORT), 'SET', 'found', 'bycontent'], { stdio: 'ignore' });
      c.on('exit', () => resolve(c.pid!));
    });
    await agent.waitFor((docs) => docs.some((d) => d.method === 'GET' && d.resource === 'k1') && docs.some((d) => d.resource === 'found'), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    agent.child.kill('SIGINT');
    await agent.exited;
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    await db?.stop();
    await db2?.stop();
  });

  const redisDocs = () => agent.docs.filter((d) => d.type === 'redis');
  const find = (pred: (d: Doc) => boolean, what: string): Doc => {
    const found = redisDocs().filter(pred);
    assert.equal(found.length, 1, `${what}: ${JSON.stringify(redisDocs().map((d) => d.query))}`);
    return found[0];
  };

  test('redis-cli SET and GET: query, return value, client and server processes', () => {
    const set = find((d) => d.method === 'SET' && d.resource === 'greeting', 'SET');
    assert.equal(set.status, 'OK');
    assert.equal(set.redis.return_value, 'OK');
    assert.equal(set.source.process.pid, pids.set);
    assert.equal(set.source.process.name, 'redis-cli');
    assert.equal(set.destination.process.pid, db.pid);
    assert.equal(set.destination.process.name, 'redis-server');
    assert.equal(set.event.action, 'redis.set');
    const get = find((d) => d.method === 'GET' && d.resource === 'greeting', 'GET');
    assert.equal(get.redis.return_value, 'hello');
    assert.equal(get.source.process.pid, pids.get);
    assert.deepEqual(get.packetbeat_ebpf.views, ['client', 'server']);
  });

  test('an error reply is an Error transaction', () => {
    const d = find((x) => x.method === 'INCR', 'INCR');
    assert.equal(d.status, 'Error');
    assert.match(d.redis.error, /not an integer/);
    assert.equal(d.event.outcome, 'failure');
  });

  test('a pipelined batch gives one transaction per command, in order, with its own reply', () => {
    const batch = redisDocs().filter((d) => d.source.process?.pid === pids.pipe);
    // redis-cli --pipe ends its batch with an ECHO of a random marker, answered last
    assert.equal(batch.pop()?.method, 'ECHO');
    assert.deepEqual(
      batch.map((d) => `${d.method} ${d.redis.return_value}`),
      ['RPUSH 1', 'RPUSH 2', 'LRANGE [a, b]', 'LPOP a'],
    );
    const mget = find((d) => d.method === 'MGET', 'MGET');
    assert.equal(mget.redis.return_value, '[v1, v2]');
    assert.equal(mget.source.process.pid, process.pid);
  });

  test('Redis on an unconfigured port is recognised by content', () => {
    const d = find((x) => x.method === 'SET' && x.resource === 'found', 'SET found');
    assert.equal(d.destination.port, INFERRED_PORT);
    assert.equal(d.source.process.pid, pids.inferred);
    assert.equal(d.destination.process.pid, db2.pid);
    assert.equal(d.redis.return_value, 'OK');
  });

  test('pub/sub: the pushed message is not paired with a later command', () => {
    const sub = find((d) => d.method === 'SUBSCRIBE', 'SUBSCRIBE');
    assert.equal(sub.status, 'OK');
    const pub = find((d) => d.method === 'PUBLISH', 'PUBLISH');
    assert.equal(pub.redis.return_value, '1');
    const get = find((d) => d.method === 'GET' && d.resource === 'k1', 'GET k1');
    assert.equal(get.redis.return_value, 'v1');
    for (const d of redisDocs()) assert.doesNotMatch(String(d.redis.return_value), /^\[message, news/);
  });
});
