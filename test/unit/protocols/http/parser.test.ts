import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createHttpParser } from '../../../../src/protocols/http/parser';
import type { HttpMessage, HttpParserOptions, HttpRequest, HttpResponse } from '../../../../src/protocols/http/types';
import type { ProtocolParser, Sender } from '../../../../src/protocols/types';
import { prng } from '../../../helpers/session-ops';

// ---- fixtures (bytes as real clients/servers send them) ---------------------

const CURL_GET =
  'GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n';

function curlGet(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n`;
}

function nginx200(body: string, extra = ''): string {
  return (
    'HTTP/1.1 200 OK\r\n' +
    'Server: nginx/1.22.1\r\n' +
    'Date: Tue, 14 May 2024 09:21:07 GMT\r\n' +
    'Content-Type: text/html\r\n' +
    `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n` +
    'Last-Modified: Mon, 13 May 2024 17:02:11 GMT\r\n' +
    'Connection: keep-alive\r\n' +
    'ETag: "66424723-d"\r\n' +
    extra +
    'Accept-Ranges: bytes\r\n' +
    '\r\n' +
    body
  );
}

const NGINX_HELLO = nginx200('Hello, world\n');

const CHUNKED_RESPONSE =
  'HTTP/1.1 200 OK\r\n' +
  'Server: nginx/1.22.1\r\n' +
  'Date: Tue, 14 May 2024 09:21:08 GMT\r\n' +
  'Content-Type: application/json\r\n' +
  'Transfer-Encoding: chunked\r\n' +
  'Connection: keep-alive\r\n' +
  'Trailer: X-Checksum\r\n' +
  '\r\n' +
  '7;name="va;lue"\r\n' +
  '{"a":1,\r\n' +
  '6\r\n' +
  '"b":2}\r\n' +
  '0\r\n' +
  'X-Checksum: 9f2c\r\n' +
  '\r\n';

const NGINX_204 =
  'HTTP/1.1 204 No Content\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 May 2024 09:21:09 GMT\r\nConnection: keep-alive\r\n\r\n';

// ---- harness -------------------------------------------------------------------

type Op =
  | { op: 'feed'; from: Sender; data: Buffer; ts: number }
  | { op: 'gap'; from: Sender; length: number; ts: number }
  | { op: 'end'; from: Sender; ts: number };

interface Run {
  parser: ProtocolParser;
  messages: HttpMessage[];
  errors: Array<[string, boolean]>;
}

function newRun(options?: HttpParserOptions): Run {
  const messages: HttpMessage[] = [];
  const errors: Array<[string, boolean]> = [];
  const parser = createHttpParser(
    { onMessage: (m) => messages.push(m), onError: (reason, fatal) => errors.push([reason, fatal]) },
    options,
  );
  return { parser, messages, errors };
}

function apply(run: Run, ops: Op[]): Run {
  for (const o of ops) {
    if (o.op === 'feed') run.parser.feed(o.from, o.data, o.ts);
    else if (o.op === 'gap') run.parser.gap(o.from, o.length, o.ts);
    else run.parser.end(o.from, o.ts);
  }
  return run;
}

function feed(from: Sender, data: string | Buffer, ts: number): Op {
  return { op: 'feed', from, data: typeof data === 'string' ? Buffer.from(data, 'latin1') : data, ts };
}

function req(m: HttpMessage | undefined): HttpRequest {
  assert.ok(m, 'message expected');
  assert.equal(m.kind, 'request');
  return m as HttpRequest;
}

function res(m: HttpMessage | undefined): HttpResponse {
  assert.ok(m, 'message expected');
  assert.equal(m.kind, 'response');
  return m as HttpResponse;
}


// ---- tests ---------------------------------------------------------------------

test('simple GET / 200 with Content-Length', () => {
  const run = apply(newRun(), [feed('client', CURL_GET, 1000), feed('server', NGINX_HELLO, 2000)]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 2);

  const q = req(run.messages[0]);
  assert.equal(q.method, 'GET');
  assert.equal(q.target, '/hello');
  assert.equal(q.version, '1.1');
  assert.deepEqual(q.headers, [
    ['host', '127.0.0.1:8080'],
    ['user-agent', 'curl/7.88.1'],
    ['accept', '*/*'],
  ]);
  assert.equal(q.headerBytes, CURL_GET.length);
  assert.equal(q.bodyBytes, 0);
  assert.equal(q.contentLength, 0);
  assert.equal(q.gapBytes, 0);
  assert.equal(q.body.length, 0);
  assert.equal(q.startNs, 1000);
  assert.equal(q.endNs, 1000);
  assert.deepEqual(q.notes, []);

  const r = res(run.messages[1]);
  assert.equal(r.statusCode, 200);
  assert.equal(r.statusPhrase, 'OK');
  assert.equal(r.version, '1.1');
  assert.equal(r.closeDelimited, false);
  assert.equal(r.headerBytes, NGINX_HELLO.length - 13);
  assert.equal(r.bodyBytes, 13);
  assert.equal(r.contentLength, 13);
  assert.equal(r.body.toString(), 'Hello, world\n');
  assert.equal(r.headers.length, 8);
  assert.deepEqual(r.headers[0], ['server', 'nginx/1.22.1']);
  assert.deepEqual(r.headers[3], ['content-length', '13']);
  assert.deepEqual(r.headers[5], ['connection', 'keep-alive']);
  assert.equal(r.startNs, 2000);
  assert.equal(r.endNs, 2000);
  assert.equal(run.parser.bufferedBytes(), 0);
});

test('timestamps: startNs from the first byte, endNs from the last byte', () => {
  const head = NGINX_HELLO.slice(0, NGINX_HELLO.length - 13);
  const run = apply(newRun(), [
    feed('client', CURL_GET, 10),
    feed('server', head, 20),
    feed('server', 'Hello, ', 30),
    feed('server', 'world\n', 40),
  ]);
  const r = res(run.messages[1]);
  assert.equal(r.startNs, 20);
  assert.equal(r.endNs, 40);
  assert.equal(r.body.toString(), 'Hello, world\n');
});

test('keep-alive: several requests and responses on one connection', () => {
  const run = newRun();
  const paths = ['/a', '/bb', '/ccc'];
  paths.forEach((p, i) => {
    apply(run, [feed('client', curlGet(p), 100 * i + 1), feed('server', nginx200(`body of ${p}`), 100 * i + 2)]);
  });
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 6);
  paths.forEach((p, i) => {
    const q = req(run.messages[2 * i]);
    const r = res(run.messages[2 * i + 1]);
    assert.equal(q.target, p);
    assert.equal(q.startNs, 100 * i + 1);
    assert.equal(r.body.toString(), `body of ${p}`);
    assert.equal(r.startNs, 100 * i + 2);
  });
});

test('pipelining: 3 requests in one feed, then 3 responses in one feed', () => {
  const post = 'POST /api/items HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id":1234}';
  const head = 'HEAD /big.iso HTTP/1.1\r\nHost: example.com\r\n\r\n';
  const requests = curlGet('/one') + head + post;
  const responses =
    nginx200('first') +
    // HEAD response: Content-Length describes the GET body but none is sent
    'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 734003200\r\nConnection: keep-alive\r\n\r\n' +
    'HTTP/1.1 201 Created\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok';
  const run = apply(newRun(), [feed('client', requests, 5), feed('server', responses, 6)]);
  assert.deepEqual(run.errors, []);
  assert.deepEqual(
    run.messages.map((m) => (m.kind === 'request' ? `${m.method} ${m.target}` : `${m.statusCode} ${m.body.toString()}`)),
    ['GET /one', 'HEAD /big.iso', 'POST /api/items', '200 first', '200 ', '201 ok'],
  );
  const p = req(run.messages[2]);
  assert.equal(p.bodyBytes, 11);
  assert.equal(p.contentLength, 11);
  assert.equal(p.body.toString(), '{"id":1234}');
  const h = res(run.messages[4]);
  assert.equal(h.bodyBytes, 0);
  assert.equal(h.contentLength, 0);
  assert.equal(run.parser.bufferedBytes(), 0);
});

test('pipelining: HEAD and GET answered in order while the pending-method ring grows and wraps', () => {
  // a HEAD response's Content-Length has no body after it: a method paired with
  // the wrong response would misparse what follows
  const headReq = (n: number) => `HEAD /h${n} HTTP/1.1\r\nHost: example.com\r\n\r\n`;
  const headRes = 'HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n';
  const getRes = (n: number) => `HTTP/1.1 200 OK\r\nContent-Length: ${String(n).length}\r\n\r\n${n}`;
  const rnd = prng(7);
  const ops: Op[] = [];
  const expected: string[] = [];
  let sent = 0;
  let answered = 0;
  const kinds: boolean[] = [];
  let ts = 1;
  // bursts of up to 40 requests, then fewer responses: the backlog climbs past 2, 4, ... 64 and wraps
  for (let burst = 0; burst < 30; burst++) {
    let reqs = '';
    for (let i = 0, n = 1 + Math.floor(rnd() * 40); i < n; i++, sent++) {
      const isHead = rnd() < 0.5;
      kinds.push(isHead);
      reqs += isHead ? headReq(sent) : curlGet(`/g${sent}`);
    }
    ops.push(feed('client', reqs, ts++));
    let resps = '';
    for (let i = 0, n = Math.floor(rnd() * 30); i < n && answered < sent; i++, answered++) {
      resps += kinds[answered] ? headRes : getRes(answered);
      expected.push(kinds[answered] ? '200 ' : `200 ${answered}`);
    }
    if (resps) ops.push(feed('server', resps, ts++));
  }
  let rest = '';
  for (; answered < sent; answered++) {
    rest += kinds[answered] ? headRes : getRes(answered);
    expected.push(kinds[answered] ? '200 ' : `200 ${answered}`);
  }
  ops.push(feed('server', rest, ts++));
  const run = apply(newRun(), ops);
  assert.deepEqual(run.errors, []);
  const responses = run.messages.filter((m) => m.kind === 'response').map((m) => `${(m as HttpResponse).statusCode} ${m.body.toString()}`);
  assert.deepEqual(responses, expected);
  assert.equal(run.parser.bufferedBytes(), 0);
});

/** Messages as plain data, so deepEqual compares everything including bodies. */
function snapshot(run: Run): unknown {
  return { messages: run.messages.map((m) => ({ ...m, body: m.body.toString('hex') })), errors: run.errors };
}

test('chunked response (extensions, trailer) split at every byte boundary', () => {
  const stream = Buffer.from(CHUNKED_RESPONSE + NGINX_204, 'latin1');
  const requests = curlGet('/json') + curlGet('/empty');
  const whole = apply(newRun(), [feed('client', requests, 1), feed('server', stream, 2)]);

  assert.deepEqual(whole.errors, []);
  assert.equal(whole.messages.length, 4);
  const r = res(whole.messages[2]);
  assert.equal(r.statusCode, 200);
  assert.equal(r.body.toString(), '{"a":1,"b":2}');
  assert.equal(r.contentLength, 13);
  const headLen = CHUNKED_RESPONSE.indexOf('\r\n\r\n') + 4;
  assert.equal(r.headerBytes, headLen);
  assert.equal(r.bodyBytes, CHUNKED_RESPONSE.length - headLen);
  assert.equal(r.closeDelimited, false);
  assert.equal(res(whole.messages[3]).statusCode, 204);

  const expected = snapshot(whole);
  for (let i = 0; i <= stream.length; i++) {
    const split = apply(newRun(), [
      feed('client', requests, 1),
      feed('server', stream.subarray(0, i), 2),
      feed('server', stream.subarray(i), 2),
    ]);
    assert.deepEqual(snapshot(split), expected, `split at ${i}`);
  }
  // and three pieces, every pair of split points in the chunked framing region
  for (let i = headLen - 3; i < CHUNKED_RESPONSE.length; i++) {
    for (let j = i; j < CHUNKED_RESPONSE.length + 2; j++) {
      const split = apply(newRun(), [
        feed('client', requests, 1),
        feed('server', stream.subarray(0, i), 2),
        feed('server', stream.subarray(i, j), 2),
        feed('server', stream.subarray(j), 2),
      ]);
      assert.deepEqual(snapshot(split), expected, `split at ${i},${j}`);
    }
  }
});

test('a whole conversation fed one byte at a time equals feeding it whole', () => {
  const post = 'POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
  const client = Buffer.from(CURL_GET + post + 'HEAD / HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1');
  const headAnswer = nginx200('0123456789').slice(0, -10); // Content-Length: 10, no body
  const server = Buffer.from(NGINX_HELLO + CHUNKED_RESPONSE + headAnswer, 'latin1');
  const whole = apply(newRun(), [feed('client', client, 1), feed('server', server, 1)]);
  assert.equal(whole.messages.length, 6);
  assert.deepEqual(whole.errors, []);
  const bytes = newRun();
  for (let i = 0; i < client.length; i++) bytes.parser.feed('client', client.subarray(i, i + 1), 1);
  for (let i = 0; i < server.length; i++) bytes.parser.feed('server', server.subarray(i, i + 1), 1);
  assert.deepEqual(snapshot(bytes), snapshot(whole));
  assert.equal(req(whole.messages[1]).body.toString(), 'abc');
  assert.equal(res(whole.messages[5]).contentLength, 0);
});

test('HEAD response with Content-Length has no body', () => {
  const headReq = 'HEAD /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n';
  const headRes = NGINX_HELLO.slice(0, NGINX_HELLO.length - 13); // same headers, no body
  const run = apply(newRun(), [
    feed('client', headReq, 1),
    feed('server', headRes, 2),
    feed('client', CURL_GET, 3),
    feed('server', NGINX_HELLO, 4),
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 4);
  const h = res(run.messages[1]);
  assert.equal(h.statusCode, 200);
  assert.equal(h.bodyBytes, 0);
  assert.equal(h.contentLength, 0);
  assert.equal(h.endNs, 2);
  assert.equal(res(run.messages[3]).body.toString(), 'Hello, world\n');
});

test('204 and 304 have no body', () => {
  const r304 =
    'HTTP/1.1 304 Not Modified\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 May 2024 09:21:09 GMT\r\n' +
    'Last-Modified: Mon, 13 May 2024 17:02:11 GMT\r\nConnection: keep-alive\r\nETag: "66424723-d"\r\nContent-Length: 13\r\n\r\n';
  const run = apply(newRun(), [
    feed('client', curlGet('/a') + curlGet('/b') + curlGet('/c'), 1),
    feed('server', NGINX_204 + r304 + NGINX_HELLO, 2),
  ]);
  assert.deepEqual(run.errors, []);
  assert.deepEqual(
    run.messages.filter((m) => m.kind === 'response').map((m) => [(m as HttpResponse).statusCode, m.bodyBytes]),
    [
      [204, 0],
      [304, 0],
      [200, 13],
    ],
  );
  assert.equal(res(run.messages[4]).statusPhrase, 'Not Modified');
});

test('100 Continue then 200 for one POST does not consume the pending method', () => {
  const post =
    'POST /upload HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n' +
    'Content-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\n\r\n';
  const head = 'HEAD /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n';
  const run = apply(newRun(), [
    feed('client', post, 1),
    feed('server', 'HTTP/1.1 100 Continue\r\n\r\n', 2),
    feed('client', 'a=b&c' + head, 3),
    feed('server', nginx200('done'), 4),
    // answer to HEAD: if the 100 had used up POST, this would be matched to nothing/GET
    feed('server', 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', 5),
    feed('client', CURL_GET, 6),
    feed('server', NGINX_HELLO, 7),
  ]);
  assert.deepEqual(run.errors, []);
  const responses = run.messages.filter((m): m is HttpResponse => m.kind === 'response');
  assert.deepEqual(
    responses.map((r) => [r.statusCode, r.statusPhrase, r.bodyBytes, r.startNs]),
    [
      [100, 'Continue', 0, 2],
      [200, 'OK', 4, 4],
      [200, 'OK', 0, 5],
      [200, 'OK', 13, 7],
    ],
  );
  // the 100 is emitted at once; the POST when its body is complete
  assert.deepEqual(
    run.messages.map((m) => m.kind),
    ['response', 'request', 'request', 'response', 'response', 'request', 'response'],
  );
  const p = req(run.messages[1]);
  assert.equal(p.method, 'POST');
  assert.equal(p.body.toString(), 'a=b&c');
  assert.equal(p.startNs, 1);
  assert.equal(p.endNs, 3);
});

test('close-delimited HTTP/1.0 response is emitted on end(server)', () => {
  const run = apply(newRun(), [
    feed('client', 'GET /legacy HTTP/1.0\r\nHost: old.example\r\nUser-Agent: Wget/1.21\r\n\r\n', 1),
    feed('server', 'HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nContent-type: text/plain\r\n\r\nline one\n', 2),
    feed('server', 'line two\n', 3),
  ]);
  assert.equal(run.messages.length, 1, 'the response is not complete before the close');
  apply(run, [{ op: 'end', from: 'server', ts: 9 }]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 2);
  const q = req(run.messages[0]);
  assert.equal(q.version, '1.0');
  const r = res(run.messages[1]);
  assert.equal(r.version, '1.0');
  assert.equal(r.closeDelimited, true);
  assert.equal(r.contentLength, 18);
  assert.equal(r.bodyBytes, 18);
  assert.equal(r.body.toString(), 'line one\nline two\n');
  assert.equal(r.startNs, 2);
  assert.equal(r.endNs, 3);
  assert.deepEqual(r.headers[1], ['content-type', 'text/plain']);
  // nothing more after the end
  apply(run, [feed('server', NGINX_HELLO, 10)]);
  assert.equal(run.messages.length, 2);
});

test('gap inside a Content-Length body keeps sync for the next keep-alive message', () => {
  const body = 'x'.repeat(100);
  const full = nginx200(body);
  const headLen = full.length - 100;
  const run = apply(newRun(), [
    feed('client', curlGet('/big') + CURL_GET, 1),
    feed('server', full.slice(0, headLen + 30), 2),
    { op: 'gap', from: 'server', length: 20, ts: 3 },
    feed('server', full.slice(headLen + 50, headLen + 60), 3),
    { op: 'gap', from: 'server', length: 30, ts: 3 },
    feed('server', full.slice(headLen + 90) + NGINX_HELLO, 4),
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 4);
  const r = res(run.messages[2]);
  assert.equal(r.gapBytes, 50);
  assert.equal(r.bodyBytes, 100);
  assert.equal(r.contentLength, 100);
  assert.equal(r.body.toString(), 'x'.repeat(30), 'only the captured prefix is kept');
  assert.deepEqual(r.notes, ['Packet loss while capturing the response'], 'one note per message');
  assert.equal(r.endNs, 4);
  const next = res(run.messages[3]);
  assert.equal(next.body.toString(), 'Hello, world\n');
  assert.equal(next.gapBytes, 0);
  assert.deepEqual(next.notes, []);
});

test('gap inside a request body: note names the request; gap ending the body', () => {
  const post = 'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n';
  const run = apply(newRun(), [
    feed('client', post + '0123', 1),
    { op: 'gap', from: 'client', length: 6, ts: 2 },
    feed('client', CURL_GET, 3),
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 2);
  const p = req(run.messages[0]);
  assert.equal(p.gapBytes, 6);
  assert.equal(p.endNs, 2);
  assert.deepEqual(p.notes, ['Packet loss while capturing the request']);
  assert.equal(req(run.messages[1]).target, '/hello');
});

test('gap inside chunk data is skipped; gap in chunk framing drops the message', () => {
  const head = CHUNKED_RESPONSE.slice(0, CHUNKED_RESPONSE.indexOf('\r\n\r\n') + 4);
  const data = 'a'.repeat(40);
  const run = apply(newRun(), [
    feed('client', curlGet('/1') + curlGet('/2') + curlGet('/3'), 1),
    feed('server', `${head}28\r\n${data.slice(0, 10)}`, 2),
    { op: 'gap', from: 'server', length: 20, ts: 3 },
    feed('server', `${data.slice(30)}\r\n0\r\n\r\n`, 4),
    // second response: the gap covers data and framing
    feed('server', `${head}5\r\nhello\r\n`, 5),
    { op: 'gap', from: 'server', length: 9, ts: 6 },
    feed('server', '\r\n0\r\n\r\n' + NGINX_HELLO, 7),
  ]);
  assert.deepEqual(run.errors, []);
  const responses = run.messages.filter((m): m is HttpResponse => m.kind === 'response');
  assert.equal(responses.length, 2);
  assert.equal(responses[0]?.gapBytes, 20);
  assert.equal(responses[0]?.contentLength, 40);
  assert.equal(responses[0]?.body.toString(), 'a'.repeat(10));
  assert.equal(responses[1]?.body.toString(), 'Hello, world\n');
});

test('gap inside headers drops the message and resyncs on the next request', () => {
  const run = apply(newRun(), [
    feed('client', 'GET /lost HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Ag', 1),
    { op: 'gap', from: 'client', length: 25, ts: 2 },
    feed('client', '*/*\r\nX-Trace: 1\r\n\r\n' + curlGet('/found'), 3),
    feed('server', NGINX_HELLO, 4),
  ]);
  assert.deepEqual(run.errors, [], 'a gap is expected loss, not garbage');
  assert.equal(run.messages.length, 2);
  assert.equal(req(run.messages[0]).target, '/found');
  assert.equal(req(run.messages[0]).startNs, 3);
  assert.equal(res(run.messages[1]).statusCode, 200);
  assert.equal(run.parser.bufferedBytes(), 0);
});

test('gap while idle: next bytes are checked for a start line, else scanned', () => {
  const run = apply(newRun(), [
    feed('client', CURL_GET, 1),
    { op: 'gap', from: 'client', length: 80, ts: 2 },
    feed('client', curlGet('/right-after-gap'), 3),
    { op: 'gap', from: 'client', length: 3, ts: 4 },
    feed('client', 'ut HTTP/1.1\r\nHost: h\r\n\r\n' + curlGet('/after-scan'), 5),
  ]);
  assert.deepEqual(run.errors, []);
  assert.deepEqual(
    run.messages.map((m) => (m as HttpRequest).target),
    ['/hello', '/right-after-gap', '/after-scan'],
  );
});

test('garbage is reported once per run, then the parser resyncs', () => {
  const junk = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0a, 0x41, 0x42, 0x0a, 0x7a]);
  const run = apply(newRun(), [
    feed('client', junk, 1),
    feed('client', 'more junk\n', 2),
    feed('client', 'junk\r\n' + CURL_GET, 3),
    feed('server', 'HTTP/1.1 abc\r\n\r\n', 4),
    feed('server', NGINX_HELLO, 5),
  ]);
  assert.deepEqual(run.errors, [
    ['invalid request line', false],
    ['invalid status line', false],
  ]);
  assert.equal(run.messages.length, 2);
  assert.equal(req(run.messages[0]).target, '/hello');
  assert.equal(res(run.messages[1]).body.toString(), 'Hello, world\n');
});

test('method tokens and versions', () => {
  const run = apply(newRun(), [
    feed('client', 'PROPFIND /dav/ HTTP/1.1\r\nHost: h\r\nDepth: 1\r\n\r\n', 1),
    feed('client', 'M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n', 2),
    feed('client', 'VERSION-CONTROL_X /r HTTP/1.0\r\n\r\n', 3),
    feed('client', 'get / HTTP/1.1\r\n\r\n', 4), // lower case: not a method
    feed('client', 'GET / HTTP/1.2\r\n\r\n', 5),
    feed('client', 'ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n\r\n', 6), // 21 chars
    feed('client', 'OPTIONS * HTTP/1.1\r\n\r\n', 7),
  ]);
  assert.deepEqual(
    run.messages.map((m) => `${(m as HttpRequest).method} ${(m as HttpRequest).target} ${m.version}`),
    ['PROPFIND /dav/ 1.1', 'M-SEARCH * 1.1', 'VERSION-CONTROL_X /r 1.0', 'OPTIONS * 1.1'],
  );
  assert.deepEqual(run.errors, [['invalid request line', false]]);
});

test('bare LF line endings and obs-fold lines are tolerated', () => {
  const run = apply(newRun(), [
    feed('client', 'GET /lf HTTP/1.1\nHost: h\nX-Long: a\n  folded\nAccept: */*\n\n', 1),
    feed('server', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi', 2),
    feed('client', 'POST /c HTTP/1.1\nTransfer-Encoding: chunked\n\n2\nhi\n0\n\n', 3),
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 3);
  assert.deepEqual(req(run.messages[0]).headers, [
    ['host', 'h'],
    ['x-long', 'a'],
    ['accept', '*/*'],
  ]);
  assert.equal(res(run.messages[1]).body.toString(), 'hi');
  assert.equal(req(run.messages[2]).body.toString(), 'hi');
});

test('random bytes in random splits never throw and memory stays bounded', () => {
  const rnd = prng(0x5eed);
  const maxHeaderBytes = 2048;
  const maxBodyBytes = 256;
  const pieces = [CURL_GET, NGINX_HELLO, CHUNKED_RESPONSE, NGINX_204, 'HTTP/1.1 100 Continue\r\n\r\n', 'HEAD / HTTP/1.1\r\n\r\n'];
  let messages = 0;
  for (let round = 0; round < 200; round++) {
    const pureRandom = round % 2 === 0;
    let fatal = false;
    const parser = createHttpParser(
      {
        onMessage: () => {
          messages++;
        },
        onError: (_reason, f) => {
          fatal ||= f;
        },
      },
      { maxHeaderBytes, maxBodyBytes },
    );
    const bound = pureRandom ? maxHeaderBytes + 64 : 2 * (maxHeaderBytes + maxBodyBytes); // per-direction bounds
    for (let step = 0; step < 40; step++) {
      const from: Sender = rnd() < 0.5 ? 'client' : 'server';
      const r = rnd();
      assert.doesNotThrow(() => {
        if (r < 0.05) parser.gap(from, Math.floor(rnd() * 5000), step);
        else if (r < 0.07) parser.end(from, step);
        else {
          let buf: Buffer;
          if (pureRandom || rnd() < 0.4) {
            buf = Buffer.alloc(1 + Math.floor(rnd() * 3000));
            for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rnd() * 256);
          } else {
            // real messages with a few bytes flipped, cut anywhere
            buf = Buffer.from(pieces[Math.floor(rnd() * pieces.length)] as string, 'latin1');
            for (let k = Math.floor(rnd() * 3); k > 0; k--) buf[Math.floor(rnd() * buf.length)] = Math.floor(rnd() * 256);
            buf = buf.subarray(Math.floor(rnd() * 10));
          }
          let off = 0;
          while (off < buf.length) {
            const n = 1 + Math.floor(rnd() * (buf.length - off));
            parser.feed(from, buf.subarray(off, off + n), step);
            off += n;
          }
        }
      });
      const buffered = parser.bufferedBytes();
      assert.ok(buffered >= 0 && buffered <= bound, `round ${round} step ${step}: ${buffered} bytes buffered`);
    }
    if (!fatal) {
      // still alive: a clean exchange after resync-friendly separators must parse
      const before = messages;
      parser.gap('client', 1, 99);
      parser.gap('server', 1, 99);
      parser.feed('client', Buffer.from('\r\n' + CURL_GET), 100);
      parser.feed('server', Buffer.from('\r\n' + NGINX_HELLO), 100);
      // ended directions and upgraded connections legitimately stay silent
      assert.ok(messages - before <= 2);
    }
  }
  assert.ok(messages > 0, 'the mutated rounds produce some messages');
});

test('random-split feeds of a real exchange always match feeding it whole', () => {
  const rnd = prng(42);
  const client = Buffer.from(curlGet('/1') + 'POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc' + curlGet('/3'), 'latin1');
  const server = Buffer.from(NGINX_HELLO + CHUNKED_RESPONSE + NGINX_204, 'latin1');
  const whole = snapshot(apply(newRun(), [feed('client', client, 1), feed('server', server, 1)]));
  for (let round = 0; round < 200; round++) {
    const run = newRun();
    for (const [from, buf] of [
      ['client', client],
      ['server', server],
    ] as const) {
      let off = 0;
      while (off < buf.length) {
        const n = 1 + Math.floor(rnd() * 40);
        run.parser.feed(from, buf.subarray(off, off + n), 1);
        off += n;
      }
    }
    assert.deepEqual(snapshot(run), whole, `round ${round}`);
  }
});

test('1 MiB body: 4096-byte head plus a gap for the rest', () => {
  const size = 1024 * 1024;
  const head =
    'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 May 2024 09:21:07 GMT\r\n' +
    `Content-Type: application/octet-stream\r\nContent-Length: ${size}\r\nConnection: keep-alive\r\n\r\n`;
  const first = Buffer.alloc(4096, 0x62);
  first.write(head, 'latin1');
  const captured = 4096 - head.length;
  const run = apply(newRun(), [
    feed('client', curlGet('/file.bin') + CURL_GET, 1),
    feed('server', first, 2),
    { op: 'gap', from: 'server', length: size - captured, ts: 3 },
    feed('server', NGINX_HELLO, 4),
  ]);
  assert.deepEqual(run.errors, []);
  const responses = run.messages.filter((m): m is HttpResponse => m.kind === 'response');
  assert.equal(responses.length, 2);
  const r = responses[0] as HttpResponse;
  assert.equal(r.headerBytes, head.length);
  assert.equal(r.contentLength, size);
  assert.equal(r.bodyBytes, size);
  assert.equal(r.gapBytes, size - captured);
  assert.equal(r.body.length, 1024, 'maxBodyBytes default');
  assert.deepEqual(r.body, Buffer.alloc(1024, 0x62));
  assert.deepEqual(r.notes, ['Packet loss while capturing the response']);
  assert.equal(r.startNs, 2);
  assert.equal(r.endNs, 3);
  assert.equal(responses[1]?.body.toString(), 'Hello, world\n');
});

test('101 Switching Protocols stops parsing the connection', () => {
  const upgrade =
    'GET /chat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  const switching =
    'HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.22.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
  const frame = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  const run = apply(newRun(), [
    feed('client', upgrade, 1),
    feed('server', Buffer.concat([Buffer.from(switching), Buffer.from([0x81, 0x05]), Buffer.from('Hello')]), 2),
    feed('client', frame, 3),
    feed('client', CURL_GET, 4), // looks like HTTP but is websocket payload now
    { op: 'gap', from: 'server', length: 10, ts: 5 },
    feed('server', NGINX_HELLO, 6),
    { op: 'end', from: 'server', ts: 7 },
  ]);
  assert.deepEqual(run.errors, []);
  assert.equal(run.messages.length, 2);
  const r = res(run.messages[1]);
  assert.equal(r.statusCode, 101);
  assert.equal(r.statusPhrase, 'Switching Protocols');
  assert.equal(r.bodyBytes, 0);
  assert.equal(run.parser.bufferedBytes(), 0);
});

test('CONNECT: 200 turns the connection into a tunnel, 407 does not', () => {
  const connect = 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n';
  const tls = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf8, 0x01, 0x00, 0x00, 0xf4, 0x03, 0x03]);
  const ok = apply(newRun(), [
    feed('client', connect, 1),
    feed('client', tls, 2), // sent before the proxy's answer was seen
    feed('server', 'HTTP/1.1 200 Connection established\r\n\r\n', 3),
    feed('server', tls, 4),
    feed('client', CURL_GET, 5),
  ]);
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.messages.length, 2);
  assert.equal(req(ok.messages[0]).method, 'CONNECT');
  assert.equal(req(ok.messages[0]).target, 'example.com:443');
  assert.equal(res(ok.messages[1]).statusPhrase, 'Connection established');

  const refused = apply(newRun(), [
    feed('client', connect, 1),
    feed('server', 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n', 2),
    feed('client', CURL_GET, 3),
    feed('server', NGINX_HELLO, 4),
  ]);
  assert.deepEqual(refused.errors, []);
  assert.deepEqual(
    refused.messages.map((m) => (m.kind === 'request' ? m.method : m.statusCode)),
    ['CONNECT', 407, 'GET', 200],
  );
});

test('HTTP/2 preface gives up on the connection', () => {
  const run = apply(newRun(), [
    feed('client', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 1),
    feed('client', Buffer.from([0, 0, 0x12, 4, 0, 0, 0, 0, 0]), 2),
    feed('client', CURL_GET, 3),
    feed('server', NGINX_HELLO, 4),
  ]);
  assert.deepEqual(run.errors, [['http/2', true]]);
  assert.equal(run.messages.length, 0);
  assert.equal(run.parser.bufferedBytes(), 0);
});

test('headers larger than maxHeaderBytes are reported and memory stays bounded', () => {
  const run = newRun({ maxHeaderBytes: 1024 });
  const big = `GET /big HTTP/1.1\r\nHost: h\r\nCookie: ${'c'.repeat(3000)}\r\n\r\n`;
  for (let i = 0; i < big.length; i += 100) {
    run.parser.feed('client', Buffer.from(big.slice(i, i + 100)), 1);
    assert.ok(run.parser.bufferedBytes() <= 1024);
  }
  apply(run, [feed('client', CURL_GET, 2)]);
  assert.deepEqual(run.errors, [['header too large', false]]);
  assert.equal(run.messages.length, 1);
  assert.equal(req(run.messages[0]).target, '/hello');
});

test('maxBodyBytes limits the captured body', () => {
  const run = apply(newRun({ maxBodyBytes: 4 }), [
    feed('client', CURL_GET + curlGet('/2'), 1),
    feed('server', NGINX_HELLO + CHUNKED_RESPONSE, 2),
  ]);
  assert.equal(res(run.messages[2]).body.toString(), 'Hell');
  assert.equal(res(run.messages[2]).bodyBytes, 13);
  assert.equal(res(run.messages[3]).body.toString(), '{"a"');
  assert.equal(res(run.messages[3]).contentLength, 13);
});

test('a throwing sink does not break parsing', () => {
  const seen: string[] = [];
  const parser = createHttpParser({
    onMessage: (m) => {
      seen.push(m.kind);
      throw new Error('boom');
    },
    onError: () => {
      throw new Error('boom too');
    },
  });
  assert.doesNotThrow(() => {
    parser.feed('client', Buffer.from(CURL_GET + CURL_GET), 1);
    parser.feed('server', Buffer.from('garbage\r\n' + NGINX_HELLO), 2);
  });
  assert.deepEqual(seen, ['request', 'request', 'response']);
});

test('a chunked body written in one call and captured as head + gap + tail: the gap may end inside the chunk CRLF', () => {
  // what the kernel hands over for Node's res.end(1 MiB) on a chunked response:
  // the first bytes, a gap, and the last bytes of the write (here just the final chunk)
  const size = 0x100000;
  const head = Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${size.toString(16)}\r\n${'b'.repeat(100)}`, 'latin1');
  for (const [gapExtra, tail] of [
    [2, '0\r\n\r\n'], // the gap ends after the CRLF
    [1, '\n0\r\n\r\n'], // the gap ends between CR and LF
    [0, '\r\n0\r\n\r\n'], // the gap ends with the chunk data
  ] as const) {
    const run = apply(newRun(), [feed('client', CURL_GET, 1), feed('server', head, 2)]);
    run.parser.gap('server', size - 100 + gapExtra, 3, false);
    apply(run, [feed('server', tail, 4)]);
    const r = res(run.messages[1]);
    assert.equal(r.contentLength, size, `gap + ${gapExtra}`);
    assert.equal(r.headerBytes + r.bodyBytes, head.length + size - 100 + gapExtra + tail.length);
    assert.deepEqual(r.notes, []);
    assert.deepEqual(run.errors, []);
  }
});
