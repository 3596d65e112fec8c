/**
 * Spans, resources and histogram points built from real transaction documents
 * (the recorded HTTP session, both ends traced; pcaps of real PostgreSQL,
 * MariaDB and Redis servers): kinds, OpenTelemetry attribute names and values,
 * one Resource per process with its pid.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, type HrTime } from '@opentelemetry/api';
import { describeDocument, hrTimeOfMs, processResource, WIRE_RESOURCE_KEY, type SpanDescription } from '../../../../src/outputs/otlp/describe';
import { liveHttpDocuments, pcapDocuments, recordedHttpDocuments, type Doc } from './documents';

const CTX = { hostName: 'test-host', hostArch: 'amd64' };
const ns = ([s, n]: HrTime) => BigInt(s) * 1_000_000_000n + BigInt(n);

function spansOf(doc: Doc): SpanDescription[] {
  return describeDocument(doc, CTX);
}

describe('HTTP documents of the recorded session (client and server traced)', () => {
  const docs = recordedHttpDocuments();
  const byQuery = (path: string, query?: string) => {
    const found = docs.filter((d) => d.url.path === path && d.url.query === query);
    assert.equal(found.length > 0, true, `no document for ${path}?${query}`);
    return found[0];
  };

  test('every transaction gives a CLIENT span then a SERVER span, each with its own process', () => {
    assert.equal(docs.length, 12);
    for (const d of docs) {
      const spans = spansOf(d);
      assert.deepEqual(
        spans.map((s) => [s.side, s.kind]),
        [
          ['client', SpanKind.CLIENT],
          ['server', SpanKind.SERVER],
        ],
      );
      const [client, server] = spans;
      assert.equal(client.resource.attributes['process.pid'], d.source.process.pid);
      assert.equal(server.resource.attributes['process.pid'], d.destination.process.pid);
      assert.notEqual(client.resource.key, server.resource.key);
      for (const s of spans) {
        assert.equal(s.resource.attributes['host.name'], 'test-host');
        assert.equal(s.resource.attributes['host.arch'], 'amd64');
        // the command's name (the kernel's comm)
        assert.equal(s.resource.attributes['service.name'], (s.side === 'client' ? d.source : d.destination).process.name);
      }
    }
  });

  test('curl → nginx GET /hello: semantic-convention attributes of both views', () => {
    const d = byQuery('/hello');
    const [client, server] = spansOf(d);
    assert.equal(client.name, 'GET');
    assert.equal(server.name, 'GET');
    assert.deepEqual(client.resource.attributes, {
      'host.name': 'test-host',
      'host.arch': 'amd64',
      'service.name': 'curl',
      'process.pid': d.source.process.pid,
      'process.parent_pid': d.source.process.parent.pid,
      'process.executable.name': 'curl',
      'process.executable.path': '/usr/bin/curl',
      'process.command': 'curl',
      'process.command_args': ['curl', '-s', '-o', '/dev/null', 'http://127.0.0.1:18180/hello'],
      'process.command_line': 'curl -s -o /dev/null http://127.0.0.1:18180/hello',
      'process.owner': 'root',
      'process.user.id': 0,
    });
    assert.equal(server.resource.attributes['service.name'], 'nginx');
    assert.equal(server.resource.attributes['process.executable.name'], 'nginx');
    const common = {
      'network.transport': 'tcp',
      'network.type': 'ipv4',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'url.scheme': 'http',
      'url.path': '/hello',
      'server.address': '127.0.0.1',
      'server.port': 18180,
      'user_agent.original': 'curl/7.88.1',
      'http.request.size': d.http.request.bytes,
      'http.response.size': d.http.response.bytes,
      'http.response.body.size': 17,
    };
    assert.deepEqual(client.attributes, {
      ...common,
      'url.full': 'http://127.0.0.1:18180/hello',
      'network.peer.address': '127.0.0.1',
      'network.peer.port': 18180,
    });
    assert.deepEqual(server.attributes, {
      ...common,
      'client.address': '127.0.0.1',
      'client.port': d.source.port,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': d.source.port,
    });
    assert.deepEqual(client.status, { code: SpanStatusCode.UNSET });
    assert.deepEqual(server.status, { code: SpanStatusCode.UNSET });
  });

  test('times: each view its own, the server inside the client, durations to the ns', () => {
    for (const d of docs.filter((x) => x.event.outcome !== 'unknown')) {
      const [client, server] = spansOf(d);
      assert.equal(ns(client.end) - ns(client.start), BigInt(d.event.duration));
      assert.equal(ns(server.end) - ns(server.start), BigInt(d.packetbeat_ebpf.server_duration));
      // loopback: the server read the request after the client wrote it, answered before the client read it
      assert.ok(ns(server.start) >= ns(client.start), `${d.query}: server starts after client`);
      assert.ok(ns(server.end) <= ns(client.end), `${d.query}: server ends before client`);
      // the document's @timestamp (ms) is the client's start
      assert.equal(Number(ns(client.start) / 1_000_000n), Date.parse(d['@timestamp']));
      assert.equal(client.metric.durationS, d.event.duration / 1e9);
      assert.equal(server.metric.durationS, d.packetbeat_ebpf.server_duration / 1e9);
    }
  });

  test('a 404 is an error for the client, not for the server', () => {
    const [client, server] = spansOf(byQuery('/missing'));
    assert.equal(client.attributes['http.response.status_code'], 404);
    assert.equal(client.attributes['error.type'], '404');
    assert.deepEqual(client.status, { code: SpanStatusCode.ERROR });
    assert.equal(server.attributes['error.type'], undefined);
    assert.deepEqual(server.status, { code: SpanStatusCode.UNSET });
    assert.equal(client.metric.attributes['error.type'], '404');
  });

  test('a request never answered: error.type no_response, the note as status message', () => {
    const [client, server] = spansOf(byQuery('/never'));
    for (const s of [client, server]) {
      assert.equal(s.attributes['http.response.status_code'], undefined);
      assert.equal(s.attributes['error.type'], 'no_response');
      assert.deepEqual(s.status, { code: SpanStatusCode.ERROR, message: 'Unmatched request' });
    }
  });

  test('query strings, the POST served by node, and node as a client', () => {
    const post = spansOf(docs.find((d) => d.method === 'POST')!);
    assert.equal(post[0].name, 'POST');
    assert.equal(post[0].attributes['url.query'], 'name=value&x=1');
    assert.equal(post[1].resource.attributes['service.name'], 'node');
    const fromNode = spansOf(byQuery('/hello', 'p=1'));
    assert.equal(fromNode[0].resource.attributes['service.name'], 'node');
    assert.equal(fromNode[1].resource.attributes['service.name'], 'nginx');
    assert.equal(fromNode[0].attributes['url.query'], 'p=1');
  });

  test('histogram points: the conventions\' instruments and low-cardinality attributes only', () => {
    const [client, server] = spansOf(byQuery('/hello', 'n=1'));
    assert.equal(client.metric.name, 'http.client.request.duration');
    assert.deepEqual(client.metric.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': 18180,
      'url.scheme': 'http',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
    });
    assert.equal(server.metric.name, 'http.server.request.duration');
    assert.deepEqual(server.metric.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'url.scheme': 'http',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
    });
  });

  test('processes that drop fields drop the attributes too; the views still time the spans', () => {
    const dropped = recordedHttpDocuments({ processors: [{ drop_fields: { fields: ['url.query', 'user_agent', 'source.process.args'] } }] });
    const d = dropped.find((x) => x.url.path === '/hello' && x.source.process.name === 'curl' && x.http.request.bytes === 88)!;
    const [client, server] = spansOf(d);
    assert.equal(client.attributes['url.query'], undefined);
    assert.equal(client.attributes['user_agent.original'], undefined);
    assert.equal(client.resource.attributes['process.command_line'], undefined);
    assert.equal(client.resource.attributes['process.pid'], d.source.process.pid);
    // the processor copied the document: the views came along (ns, not the document's ms)
    assert.equal(ns(server.end) - ns(server.start), BigInt(d.packetbeat_ebpf.server_duration));
  });

  test('an HTTP method outside the conventions\' list is _OTHER, the original kept', () => {
    const d = structuredClone(byQuery('/hello'));
    d.http.request.method = 'PURGE';
    d.method = 'PURGE';
    const [client] = spansOf(d);
    assert.equal(client.attributes['http.request.method'], '_OTHER');
    assert.equal(client.attributes['http.request.method_original'], 'PURGE');
    assert.equal(client.name, 'HTTP');
    assert.equal(client.metric.attributes['http.request.method'], '_OTHER');
  });
});

describe('documents without linked views (parsed back from NDJSON)', () => {
  test('the views come from the document: client and server spans, times from event.start and the durations', () => {
    for (const d of liveHttpDocuments()) {
      const [client, server] = spansOf(d);
      assert.equal(client.kind, SpanKind.CLIENT);
      assert.equal(server.kind, SpanKind.SERVER);
      assert.equal(client.resource.attributes['process.pid'], d.source.process.pid);
      assert.equal(server.resource.attributes['process.pid'], d.destination.process.pid);
      assert.deepEqual(client.start, hrTimeOfMs(Date.parse(d.event.start)));
      assert.equal(ns(client.end) - ns(client.start), BigInt(d.packetbeat_ebpf.client_duration));
      assert.equal(ns(server.end) - ns(server.start), BigInt(d.packetbeat_ebpf.server_duration));
    }
  });
});

describe('database documents from pcaps of real servers (seen on the wire)', () => {
  test('PostgreSQL: db.* attributes, SQLSTATE as status code and error type', async () => {
    const docs = await pcapDocuments('pgsql');
    const all = docs.map((d) => spansOf(d));
    for (const spans of all) {
      assert.equal(spans.length, 1);
      const [s] = spans;
      // no socket saw it: one view, the unknown service's Resource
      assert.equal(s.kind, SpanKind.SERVER);
      assert.equal(s.resource.key, WIRE_RESOURCE_KEY);
      assert.deepEqual(s.resource.attributes, { 'host.name': 'test-host', 'host.arch': 'amd64', 'service.name': 'unknown_service' });
      assert.equal(s.attributes['db.system.name'], 'postgresql');
      assert.equal(s.attributes['server.port'], 17432);
      assert.equal(s.metric.name, 'packetbeat_ebpf.db.server.operation.duration');
    }
    const select = all.find(([s]) => s.attributes['db.query.text'] === 'SELECT a FROM t')![0];
    // {db.operation.name} {db.namespace}: the database from the StartupMessage
    assert.equal(select.name, 'SELECT postgres');
    assert.equal(select.attributes['db.namespace'], 'postgres');
    assert.equal(select.attributes['db.operation.name'], 'SELECT');
    assert.equal(select.attributes['db.response.returned_rows'], 2);
    assert.equal(select.attributes['error.type'], undefined);
    assert.deepEqual(select.status, { code: SpanStatusCode.UNSET });
    const failed = all.find(([s]) => s.attributes['db.query.text'] === 'SELECT * FROM nope')![0];
    assert.equal(failed.attributes['db.response.status_code'], '42P01');
    assert.equal(failed.attributes['error.type'], '42P01');
    assert.equal(failed.status.code, SpanStatusCode.ERROR);
    assert.match(failed.status.message ?? '', /relation "nope" does not exist/);
    assert.deepEqual(failed.metric.attributes, {
      'db.system.name': 'postgresql',
      'db.operation.name': 'SELECT',
      'db.namespace': 'postgres',
      'db.response.status_code': '42P01',
      'error.type': '42P01',
    });
  });

  test('MariaDB: db.system.name mysql, the schema as db.namespace, the error number as status code', async () => {
    const docs = await pcapDocuments('mysql');
    const spans = docs.flatMap((d) => spansOf(d));
    assert.ok(spans.length > 0);
    for (const s of spans) assert.equal(s.attributes['db.system.name'], 'mysql');
    const errors = docs.filter((d) => d.mysql?.error_code !== undefined);
    assert.ok(errors.length > 0, 'the capture has an error');
    for (const d of errors) {
      const [s] = spansOf(d);
      assert.equal(s.attributes['db.response.status_code'], String(d.mysql.error_code));
      assert.equal(s.attributes['error.type'], String(d.mysql.error_code));
      assert.equal(s.status.code, SpanStatusCode.ERROR);
    }
    const [select] = spansOf(docs.find((d) => d.query === 'SELECT a FROM t')!);
    // the schema chosen by USE d
    assert.equal(select.attributes['db.namespace'], 'd');
    assert.equal(select.name, 'SELECT d');
    assert.equal(select.attributes['db.response.returned_rows'], 3);
    const [nope] = spansOf(docs.find((d) => d.query === 'SELECT * FROM nope')!);
    assert.equal(nope.attributes['error.type'], '1146');
    assert.match(nope.status.message ?? '', /Table 'd.nope' doesn't exist/);
  });

  test('Redis: the command as operation, the error prefix as status code', async () => {
    const docs = await pcapDocuments('redis');
    const all = docs.map((d) => spansOf(d)[0]);
    for (const s of all) assert.equal(s.attributes['db.system.name'], 'redis');
    const get = all.find((s) => s.attributes['db.query.text'] === 'GET k')!;
    assert.equal(get.name, 'GET');
    assert.equal(get.attributes['db.operation.name'], 'GET');
    assert.equal(get.attributes['error.type'], undefined);
    const incr = all.find((s) => s.attributes['db.query.text'] === 'INCR k')!;
    assert.equal(incr.attributes['db.response.status_code'], 'ERR');
    assert.equal(incr.attributes['error.type'], 'ERR');
    assert.equal(incr.status.code, SpanStatusCode.ERROR);
    assert.match(incr.status.message ?? '', /^ERR /);
  });

  test('HTTP from the wire: one SERVER span, 4xx not a server error', async () => {
    const docs = await pcapDocuments('http');
    const [missing] = spansOf(docs.find((d) => d.url.path === '/missing')!);
    assert.equal(missing.kind, SpanKind.SERVER);
    assert.equal(missing.attributes['http.response.status_code'], 404);
    assert.equal(missing.attributes['error.type'], undefined);
    assert.equal(missing.resource.key, WIRE_RESOURCE_KEY);
  });
});

describe('processResource', () => {
  test('service.name is the command as started; the executable keeps its own name', () => {
    // Debian's redis-server is a link to redis-check-rdb
    const redis = processResource({ pid: 7, name: 'redis-server', executable: '/usr/bin/redis-check-rdb' }, undefined, CTX);
    assert.equal(redis.attributes['service.name'], 'redis-server');
    assert.equal(redis.attributes['process.executable.name'], 'redis-check-rdb');
    // the kernel keeps 15 characters of the name: the executable's full name then
    const resolved = processResource({ pid: 8, name: 'systemd-resolve', executable: '/usr/lib/systemd/systemd-resolved' }, undefined, CTX);
    assert.equal(resolved.attributes['service.name'], 'systemd-resolved');
  });

  test('a container id and a start time are part of the Resource and of its key', () => {
    const a = processResource({ pid: 9, name: 'app', start: '2026-11-25T04:14:32.500Z' }, 'c'.repeat(64), CTX);
    assert.equal(a.attributes['container.id'], 'c'.repeat(64));
    assert.equal(a.attributes['process.creation.time'], '2026-11-25T04:14:32.500Z');
    // the same pid later (pid reuse) is another process
    const b = processResource({ pid: 9, name: 'app', start: '2026-11-25T05:00:00.000Z' }, 'c'.repeat(64), CTX);
    assert.notEqual(a.key, b.key);
  });
});

describe('hrTimeOfMs', () => {
  test('fractional ms to [s, ns], never 1e9 ns', () => {
    const [sec, nsec] = hrTimeOfMs(1_700_000_000_123.456);
    assert.equal(sec, 1_700_000_000);
    // a double holds epoch ms to about 0.25 µs
    assert.ok(Math.abs(nsec - 123_456_000) < 500, String(nsec));
    assert.deepEqual(hrTimeOfMs(1000), [1, 0]);
    assert.deepEqual(hrTimeOfMs(1999.9999999999), [1, 999_999_999]);
  });
});
