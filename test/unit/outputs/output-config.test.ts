import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../../src/cli/main';
import { ConfigError, validateConfig } from '../../../src/config';
import { OutputConfigError } from '../../../src/outputs/backend';
import { elasticsearchClientOptions } from '../../../src/outputs/elasticsearch';
import { openSearchClientOptions } from '../../../src/outputs/opensearch';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-output-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function configError(raw: unknown): string {
  try {
    validateConfig(raw, 'test');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('output.elasticsearch / output.opensearch configuration', () => {
  test('absent by default; only hosts needed, with every default visible', () => {
    assert.equal(validateConfig({}, 't').output.elasticsearch, undefined);
    const c = validateConfig({ output: { opensearch: { hosts: ['localhost:9200'] } } }, 't').output.opensearch!;
    assert.deepEqual(c, {
      enabled: true,
      hosts: ['http://localhost:9200'],
      index: 'packetbeat-ebpf-%{[network.protocol]}',
      ssl: { certificate_authorities: [], verification_mode: 'full' },
      bulk_max_size: 1600,
      bulk_max_bytes: 5 * 1024 * 1024,
      flush_interval_ms: 1000,
      timeout_ms: 30_000,
      backoff: { init_ms: 1000, max_ms: 60_000 },
      queue: { max_bytes: 64 * 1024 * 1024 },
      spool: { enabled: true, max_bytes: 1024 * 1024 * 1024 },
    });
  });

  test('bad values name their key', () => {
    assert.match(configError({ output: { elasticsearch: { hosts: [] } } }), /output\.elasticsearch\.hosts: .*1/);
    assert.match(configError({ output: { elasticsearch: { hosts: ['ftp://x:21'] } } }), /output\.elasticsearch\.hosts\.0: "ftp:\/\/x:21": only http and https/);
    assert.match(configError({ output: { elasticsearch: { hosts: ['http://'] } } }), /is not a URL/);
    assert.match(configError({ output: { opensearch: { hosts: ['h:1'], password: 'p' } } }), /output\.opensearch\.password: password needs username/);
    assert.match(configError({ output: { elasticsearch: { hosts: ['h:1'], api_key: 'k', username: 'u' } } }), /output\.elasticsearch\.api_key: use api_key or username/);
    assert.match(configError({ output: { opensearch: { hosts: ['h:1'], api_key: 'k' } } }), /output\.opensearch\.api_key: unknown key/);
    assert.match(configError({ output: { opensearch: { hosts: ['h:1'], spool: { dirr: '/x' } } } }), /output\.opensearch\.spool\.dirr: unknown key/);
    assert.match(configError({ output: { opensearch: { hosts: ['h:1'], backoff: { init_ms: 10, max_ms: 5 } } } }), /max_ms must be at least init_ms/);
  });

  test('--es / --opensearch set the hosts and keep the file\'s other settings; --no-console', () => {
    const file = path.join(tmp, 'c.yml');
    fs.writeFileSync(file, 'output:\n  elasticsearch:\n    hosts: ["http://old:9200"]\n    api_key: "a2V5"\n    index: "mine"\n');
    const c = loadConfig({ config: file, es: ['https://es1:9200', 'es2:9200'], opensearch: ['http://127.0.0.1:9201'], console: false });
    assert.deepEqual(c.output.elasticsearch!.hosts, ['https://es1:9200', 'http://es2:9200']);
    assert.equal(c.output.elasticsearch!.api_key, 'a2V5');
    assert.equal(c.output.elasticsearch!.index, 'mine');
    assert.deepEqual(c.output.opensearch!.hosts, ['http://127.0.0.1:9201']);
    assert.equal(c.output.console.enabled, false);
    assert.equal(loadConfig({ config: file }).output.console.enabled, true);
  });
});

describe('client options', () => {
  test('Elasticsearch: API key or basic auth, one try per host, our request timeout', () => {
    const es = validateConfig({ output: { elasticsearch: { hosts: ['a:9200', 'b:9200'], api_key: 'aWQ6a2V5', timeout_ms: 5000 } } }, 't').output.elasticsearch!;
    const o = elasticsearchClientOptions(es);
    assert.deepEqual(o.nodes, ['http://a:9200', 'http://b:9200']);
    assert.deepEqual(o.auth, { apiKey: 'aWQ6a2V5' });
    assert.equal(o.maxRetries, 1);
    assert.equal(o.requestTimeout, 5000);
    assert.equal(o.tls, undefined);
    const basic = validateConfig({ output: { elasticsearch: { hosts: ['a:9200'], username: 'elastic', password: 'pw' } } }, 't').output.elasticsearch!;
    assert.deepEqual(elasticsearchClientOptions(basic).auth, { username: 'elastic', password: 'pw' });
  });

  test('TLS: CA files read at start (a missing one is a clear error); verification can be turned off', () => {
    const ca = path.join(tmp, 'ca.pem');
    fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const os = validateConfig({ output: { opensearch: { hosts: ['https://a:9200'], username: 'admin', password: 'x', ssl: { certificate_authorities: [ca] } } } }, 't').output.opensearch!;
    const o = openSearchClientOptions(os);
    assert.deepEqual(o.ssl, { ca: [fs.readFileSync(ca, 'utf8')], rejectUnauthorized: true });
    assert.deepEqual(o.auth, { username: 'admin', password: 'x' });
    const none = validateConfig({ output: { opensearch: { hosts: ['https://a:9200'], ssl: { verification_mode: 'none' } } } }, 't').output.opensearch!;
    assert.deepEqual(openSearchClientOptions(none).ssl, { rejectUnauthorized: false });
    const missing = validateConfig({ output: { elasticsearch: { hosts: ['https://a:9200'], ssl: { certificate_authorities: ['/nonexistent/ca.pem'] } } } }, 't').output.elasticsearch!;
    assert.throws(() => elasticsearchClientOptions(missing), (err: Error) => err instanceof OutputConfigError && /ssl\.certificate_authorities: cannot read \/nonexistent\/ca\.pem/.test(err.message));
  });
});
