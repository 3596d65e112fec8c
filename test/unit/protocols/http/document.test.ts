/**
 * Hostile Host headers still give documents whose values fit the index
 * template (url.port is a long; a port past 65535 is not one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../../../src/config';
import { createHttpModule } from '../../../../src/protocols/http';
import type { HttpData } from '../../../../src/protocols/http/session';
import type { ProtocolTransaction } from '../../../../src/protocols/types';

function exchange(host: string): Record<string, any> {
  const module = createHttpModule(validateConfig({}, 'test').protocols.http);
  const txns: Array<ProtocolTransaction<HttpData>> = [];
  const session = module.createSession({ onTransaction: (t) => txns.push(t), onError: () => {} });
  session.feed('client', Buffer.from(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`), 1);
  session.feed('server', Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 2);
  session.close(3);
  assert.equal(txns.length, 1);
  return module.documentFields(txns, { ip: '127.0.0.1', port: 80 }).fields;
}

test('Host with a port: url.domain and url.port', () => {
  const f = exchange('example.com:8080');
  assert.equal(f.url.domain, 'example.com');
  assert.equal(f.url.port, 8080);
  assert.equal(f.url.full, 'http://example.com:8080/x');
});

test('Host with a port past 65535 (or past a long): no url.port, the Host kept as the domain', () => {
  for (const host of ['example.com:70000', 'example.com:99999999999999999999999']) {
    const f = exchange(host);
    assert.equal(f.url.port, undefined, host);
    assert.equal(f.url.domain, host);
  }
});
