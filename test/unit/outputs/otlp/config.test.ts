/** output.otlp in the config file and the --otlp flags of run and replay. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../../../src/cli/main';
import { ConfigError, validateConfig } from '../../../../src/config';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-otlp-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function yaml(text: string): string {
  const f = path.join(tmp, `c${fs.readdirSync(tmp).length}.yml`);
  fs.writeFileSync(f, text);
  return f;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('defaults: off, http/protobuf, bounded queue and processes', () => {
  assert.deepEqual(validateConfig({}, 'test').output.otlp, {
    enabled: false,
    protocol: 'http/protobuf',
    headers: {},
    timeout_ms: 10_000,
    batch_size: 512,
    batch_delay_ms: 1_000,
    queue_size: 8_192,
    metrics_interval_ms: 60_000,
    max_processes: 256,
    process_idle_s: 300,
  });
});

test('the file: endpoint, protocol and headers; console stays on beside it', () => {
  const c = loadConfig({
    config: yaml('output:\n  otlp:\n    enabled: true\n    endpoint: https://otel.example:4317\n    protocol: grpc\n    headers:\n      authorization: Bearer x\n'),
  });
  assert.equal(c.output.otlp.enabled, true);
  assert.equal(c.output.otlp.endpoint, 'https://otel.example:4317');
  assert.equal(c.output.otlp.protocol, 'grpc');
  assert.deepEqual(c.output.otlp.headers, { authorization: 'Bearer x' });
  assert.equal(c.output.console.enabled, true);
});

test('--otlp enables the output; --otlp-protocol and --otlp-header over the file', () => {
  const file = yaml('output:\n  otlp:\n    headers:\n      x-team: a\n    queue_size: 100\n');
  const c = loadConfig({ config: file, otlp: 'http://127.0.0.1:4318', otlpProtocol: 'http/json', otlpHeader: ['authorization=Basic abc=', 'x-team=b'] });
  assert.equal(c.output.otlp.enabled, true);
  assert.equal(c.output.otlp.endpoint, 'http://127.0.0.1:4318');
  assert.equal(c.output.otlp.protocol, 'http/json');
  // a value may itself contain '='
  assert.deepEqual(c.output.otlp.headers, { 'x-team': 'b', authorization: 'Basic abc=' });
  assert.equal(c.output.otlp.queue_size, 100);
  assert.equal(loadConfig({ config: file }).output.otlp.enabled, false);
});

test('bad values are named', () => {
  assert.match(configError(() => loadConfig({ config: yaml('{}'), otlp: 'localhost:4318' })), /output\.otlp\.endpoint: must be an http:\/\/ or https:\/\/ URL/);
  assert.match(configError(() => loadConfig({ config: yaml('{}'), otlp: 'ftp://x' })), /output\.otlp\.endpoint/);
  assert.match(configError(() => loadConfig({ config: yaml('{}'), otlpProtocol: 'thrift' })), /output\.otlp\.protocol/);
  assert.match(configError(() => loadConfig({ config: yaml('{}'), otlpHeader: ['novalue'] })), /--otlp-header expects NAME=VALUE/);
  assert.match(configError(() => validateConfig({ output: { otlp: { queue_size: 0 } } }, 'x')), /output\.otlp\.queue_size/);
  assert.match(configError(() => validateConfig({ output: { otlp: { endpont: 'http://x' } } }, 'x')), /output\.otlp\.endpont: unknown key/);
});
