/**
 * The HTTP module's writer of its fields (fieldJson: http.*, url.*) gives
 * exactly JSON.stringify's text, for exchanges with hostile bytes in every
 * part the traffic controls, under the options that change the fields' shape.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../../../src/config';
import { createHttpModule } from '../../../../src/protocols/http';
import type { HttpData } from '../../../../src/protocols/http/session';
import type { ProtocolTransaction } from '../../../../src/protocols/types';

/** Text a header value, a path or a reason phrase may carry (latin1: the parser's view of bytes). */
const HOSTILE = ['plain', 'say "hi"', 'back\\slash', 'tab\there', 'latin1 \u00e9\u00ff', '\u0080\u009f c1', '{"json":1}', '</script>', ''];

const OPTIONS: Array<Record<string, unknown>> = [
  {},
  { send_all_headers: true, split_cookie: true, redact_headers: [], include_body_for: ['text/'], send_request: true, send_response: true },
  { send_headers: ['x-h', 'referer', 'user-agent'], redact_authorization: false, hide_keywords: ['pass'], real_ip_header: 'x-forwarded-for' },
];

function exchanges(s: string): Array<[string, string]> {
  const body = `a=1&pass=${s}`;
  return [
    [`GET /p/${s}.html?q=${s}&pass=x HTTP/1.1\r\nHost: ${s}:8080\r\nUser-Agent: ${s}\r\nReferer: ${s}\r\nX-H: ${s}\r\nX-H: two\r\n\r\n`, `HTTP/1.1 404 ${s}\r\nContent-Type: text/plain\r\nSet-Cookie: a=${s}; Path=/\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabc`],
    [`POST http://${s}/form HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\nCookie: c=${s}\r\nAuthorization: Basic dXNlcjpwdw==\r\nX-Forwarded-For: ${s}, 10.0.0.1\r\n\r\n${body}`, `HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=latin1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n${'<b>'}\r\n0\r\n\r\n`],
    [`HEAD / HTTP/1.1\r\nHost: [::1]:80\r\n0: numeric\r\n\r\n`, `HTTP/1.1 204 ${s}\r\n0: n\r\nContent-Length: 0\r\n\r\n`],
    [`GET /only-a-request HTTP/1.1\r\nHost: h\r\n\r\n`, ''],
    ['', `HTTP/1.1 500 ${s}\r\nContent-Length: 2\r\n\r\nno`],
  ];
}

test('http.* and url.*: the same text as JSON.stringify, whatever the traffic and the options', () => {
  let checked = 0;
  for (const options of OPTIONS) {
    const module = createHttpModule(validateConfig({ protocols: { http: options } }, 'test').protocols.http);
    assert.ok(module.fieldJson, 'the HTTP module writes its own fields');
    for (const s of HOSTILE) {
      for (const [request, response] of exchanges(s)) {
        const txns: Array<ProtocolTransaction<HttpData>> = [];
        const session = module.createSession({ onTransaction: (t) => txns.push(t), onError: () => {} });
        if (request) session.feed('client', Buffer.from(request, 'latin1'), 1);
        if (response) session.feed('server', Buffer.from(response, 'latin1'), 2);
        session.close(3);
        session.expire(Infinity);
        assert.ok(txns.length >= 1, request || response);
        const { fields } = module.documentFields(txns, { ip: '::1', port: 8080 });
        for (const key of ['http', 'url']) {
          if (fields[key] === undefined) continue;
          assert.equal(module.fieldJson(key, fields[key]), JSON.stringify(fields[key]), `${key} of ${JSON.stringify(request)} with ${JSON.stringify(options)}`);
          checked++;
        }
        assert.equal(module.fieldJson('user_agent', fields.user_agent), undefined, 'other keys are left to the generic writer');
      }
    }
  }
  assert.ok(checked > 150, `${checked} values checked`);
});
