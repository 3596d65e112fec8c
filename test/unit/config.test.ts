import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  DEFAULT_PORTS,
  drainIntervalMs,
  drainMinIntervalMs,
  parsePortsFlag,
  readConfigFile,
  validateConfig,
} from '../../src/config';
import { loadConfig } from '../../src/cli/main';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-config-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileNo = 0;
function writeYaml(text: string): string {
  const file = path.join(tmp, `config-${++fileNo}.yml`);
  fs.writeFileSync(file, text);
  return file;
}

/** The ConfigError thrown by fn; fails the test when fn does not throw one. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}

describe('validateConfig: defaults', () => {
  test('an empty config gets every default', () => {
    const c = validateConfig({}, 'test');
    assert.deepEqual(c.protocols.http.ports, [80, 8080, 8000, 5000, 8002]);
    assert.equal(c.protocols.http.enabled, true);
    assert.equal(c.protocols.http.send_all_headers, false);
    // secrets stay on the host by default (Packetbeat's defaults are the opposite)
    assert.equal(c.protocols.http.redact_authorization, true);
    assert.deepEqual(c.protocols.http.redact_headers, ['cookie', 'set-cookie']);
    assert.equal(c.protocols.http.send_request, false);
    assert.equal(c.protocols.http.send_response, false);
    assert.deepEqual(c.protocols.http.hide_keywords, []);
    assert.equal(c.protocols.http.max_message_size, 10 * 1024 * 1024);
    assert.deepEqual(c.protocols.mysql, {
      enabled: true,
      ports: [3306, 3307],
      send_request: false,
      send_response: false,
      max_rows: 10,
      max_row_length: 1024,
    });
    assert.deepEqual(c.protocols.pgsql, { enabled: true, ports: [5432], send_request: false, send_response: false, max_rows: 10, max_row_length: 1024 });
    assert.deepEqual(c.protocols.redis, {
      enabled: true,
      ports: [6379],
      send_request: false,
      send_response: false,
      queue_max_bytes: 1024 * 1024,
      queue_max_messages: 20_000,
    });
    assert.deepEqual(c.tags, []);
    assert.deepEqual(c.processors, []);
    assert.equal(c.max_payload, 4096);
    assert.deepEqual(c.pids, []);
    assert.equal(c.transaction_timeout_ms, 10_000);
    assert.equal(c.join_window_ms, 500);
    assert.equal(c.ring_buffer_bytes, 16 * 1024 * 1024);
    assert.equal(c.wakeup_bytes, 256 * 1024);
    assert.equal(c.drain_interval_ms, undefined); // drainIntervalMs: by capture
    assert.equal(c.drain_min_interval_ms, undefined); // drainMinIntervalMs: by capture and scheduling
    assert.equal(c.stats_interval_s, 30);
    assert.equal(c.nice, 0);
    assert.deepEqual(c.output.console, { enabled: true, pretty: false });
    assert.equal(c.output.otlp.enabled, false);
  });

  test('null (an empty YAML file) gets the defaults too', () => {
    assert.deepEqual(validateConfig(null, 'test'), validateConfig({}, 'test'));
    assert.deepEqual(validateConfig(undefined, 'test'), validateConfig({}, 'test'));
  });

  test('DEFAULT_PORTS are packetbeat\'s', () => {
    assert.deepEqual(DEFAULT_PORTS.http, [80, 8080, 8000, 5000, 8002]);
    assert.deepEqual(DEFAULT_PORTS.redis, [6379]);
  });

  test('the default port list is a copy (changing one config does not change the next)', () => {
    const a = validateConfig({}, 'test');
    a.protocols.http.ports.push(1);
    assert.deepEqual(validateConfig({}, 'test').protocols.http.ports, [80, 8080, 8000, 5000, 8002]);
  });

  test('a partial protocol section keeps the other defaults', () => {
    const c = validateConfig({ protocols: { http: { ports: [9000] } } }, 'test');
    assert.deepEqual(c.protocols.http.ports, [9000]);
    assert.equal(c.protocols.http.enabled, true);
    assert.equal(c.protocols.http.redact_authorization, true);
    assert.equal(c.protocols.http.redact_headers.length, 2);
    assert.deepEqual(c.protocols.redis.ports, [6379]);
  });

  test('drain_interval_ms left out: 50 ms for the kernel hooks, 20 ms for the packet mode', () => {
    const cfg = (extra: Record<string, unknown>) => validateConfig({ protocols: { http: { ports: [80] } }, ...extra }, 't');
    assert.equal(drainIntervalMs(cfg({}), 'kernel'), 50);
    assert.equal(drainIntervalMs(cfg({}), 'packet'), 20);
    assert.equal(drainIntervalMs(cfg({ drain_interval_ms: 7 }), 'kernel'), 7);
    assert.equal(drainIntervalMs(cfg({ drain_interval_ms: 7 }), 'packet'), 7);
  });

  test('drain_min_interval_ms left out: 5 ms for the kernel hooks under SCHED_IDLE, 1 ms at normal priority and for the packet mode', () => {
    const cfg = (extra: Record<string, unknown>) => validateConfig({ protocols: { http: { ports: [80] } }, ...extra }, 't');
    assert.equal(drainMinIntervalMs(cfg({}), 'kernel'), 5);
    assert.equal(drainMinIntervalMs(cfg({ sched_idle: true }), 'kernel'), 5);
    assert.equal(drainMinIntervalMs(cfg({ sched_idle: false }), 'kernel'), 1);
    assert.equal(drainMinIntervalMs(cfg({}), 'packet'), 1);
    assert.equal(drainMinIntervalMs(cfg({ drain_min_interval_ms: 3 }), 'kernel'), 3);
    assert.equal(drainMinIntervalMs(cfg({ drain_min_interval_ms: 3, sched_idle: false }), 'packet'), 3);
  });

  test('given values are kept', () => {
    const c = validateConfig(
      { max_payload: 64, pids: [1, 2], ring_buffer_bytes: 4096, protocols: { redis: { enabled: false } }, output: { console: { pretty: true } } },
      'test',
    );
    assert.equal(c.max_payload, 64);
    assert.deepEqual(c.pids, [1, 2]);
    assert.equal(c.ring_buffer_bytes, 4096);
    assert.equal(c.protocols.redis.enabled, false);
    assert.deepEqual(c.protocols.redis.ports, [6379]);
    assert.deepEqual(c.output.console, { enabled: true, pretty: true });
  });
});

describe('validateConfig: errors name the key', () => {
  test('an unknown nested key is rejected, naming its path', () => {
    const e = configError(() => validateConfig({ protocols: { http: { portz: [80] } } }, 'my.yml'));
    assert.match(e.message, /my\.yml/);
    assert.match(e.message, /^\s+protocols\.http\.portz: unknown key$/m);
  });

  test('unknown top-level keys are each named', () => {
    const e = configError(() => validateConfig({ max_paylod: 100, outputs: {} }, 'my.yml'));
    assert.match(e.message, /^\s+max_paylod: unknown key$/m);
    assert.match(e.message, /^\s+outputs: unknown key$/m);
  });

  test('an unknown protocol is rejected', () => {
    const e = configError(() => validateConfig({ protocols: { mongodb: { ports: [27017] } } }, 'my.yml'));
    assert.match(e.message, /^\s+protocols\.mongodb: unknown key$/m);
  });

  test('a wrong type names the key path', () => {
    let e = configError(() => validateConfig({ protocols: { http: { ports: '80' } } }, 'my.yml'));
    assert.match(e.message, /protocols\.http\.ports:/);
    e = configError(() => validateConfig({ output: { console: { pretty: 'yes' } } }, 'my.yml'));
    assert.match(e.message, /output\.console\.pretty:/);
    e = configError(() => validateConfig({ max_payload: '4096' }, 'my.yml'));
    assert.match(e.message, /max_payload:/);
  });

  test('a bad array element names its index', () => {
    const e = configError(() => validateConfig({ protocols: { http: { ports: [80, 70000] } } }, 'my.yml'));
    assert.match(e.message, /protocols\.http\.ports\.1:/);
  });

  test('an empty port list is rejected', () => {
    const e = configError(() => validateConfig({ protocols: { pgsql: { ports: [] } } }, 'my.yml'));
    assert.match(e.message, /protocols\.pgsql\.ports:/);
  });

  test('max_payload out of range', () => {
    assert.match(configError(() => validateConfig({ max_payload: 63 }, 't')).message, /max_payload:/);
    assert.match(configError(() => validateConfig({ max_payload: 16385 }, 't')).message, /max_payload:/);
    assert.match(configError(() => validateConfig({ max_payload: 100.5 }, 't')).message, /max_payload:/);
    assert.equal(validateConfig({ max_payload: 16384 }, 't').max_payload, 16384);
    assert.equal(validateConfig({ max_payload: 64 }, 't').max_payload, 64);
  });

  test('sched_idle: auto by default, a boolean or auto; --sched-idle [auto|off] over the file', () => {
    assert.equal(validateConfig({}, 't').sched_idle, 'auto');
    assert.equal(validateConfig({ sched_idle: false }, 't').sched_idle, false);
    assert.match(configError(() => validateConfig({ sched_idle: 'yes' }, 't')).message, /sched_idle:/);
    assert.equal(loadConfig({ config: writeYaml('sched_idle: false\n'), schedIdle: true }).sched_idle, true);
    assert.equal(loadConfig({ config: writeYaml('sched_idle: true\n') }).sched_idle, true);
    assert.equal(loadConfig({ config: writeYaml('sched_idle: true\n'), schedIdle: 'off' }).sched_idle, false);
    assert.equal(loadConfig({ config: writeYaml('sched_idle: false\n'), schedIdle: 'auto' }).sched_idle, 'auto');
    assert.match(configError(() => loadConfig({ schedIdle: 'sometimes' })).message, /--sched-idle takes no value, "auto" or "off", got "sometimes"/);
  });

  test("sched_idle auto's budget: a tenth of a CPU, bursts of 2 CPU-seconds by default; both above 0", () => {
    const c = validateConfig({}, 't');
    assert.equal(c.sched_boost_cpu, 0.1);
    assert.equal(c.sched_boost_burst_s, 2);
    const set = validateConfig({ sched_boost_cpu: 1, sched_boost_burst_s: 0.5 }, 't');
    assert.equal(set.sched_boost_cpu, 1);
    assert.equal(set.sched_boost_burst_s, 0.5);
    for (const bad of [0, -0.1, 65, 'half']) assert.match(configError(() => validateConfig({ sched_boost_cpu: bad }, 't')).message, /sched_boost_cpu:/);
    for (const bad of [0, -1, 3601]) assert.match(configError(() => validateConfig({ sched_boost_burst_s: bad }, 't')).message, /sched_boost_burst_s:/);
  });

  test('nice: -20..19, whole; the --nice flag over the file', () => {
    for (const bad of [-21, 20, 1.5]) assert.match(configError(() => validateConfig({ nice: bad }, 't')).message, /nice:/);
    assert.equal(validateConfig({ nice: 19 }, 't').nice, 19);
    assert.equal(validateConfig({ nice: -20 }, 't').nice, -20);
    assert.equal(loadConfig({ config: writeYaml('nice: 5\n'), nice: 10 }).nice, 10);
  });

  test('ring_buffer_bytes must be a power of two of at least a page', () => {
    const e = configError(() => validateConfig({ ring_buffer_bytes: 3 * 4096 }, 't'));
    assert.match(e.message, /ring_buffer_bytes: must be a power of two/);
    assert.match(configError(() => validateConfig({ ring_buffer_bytes: 2048 }, 't')).message, /ring_buffer_bytes:/);
    assert.equal(validateConfig({ ring_buffer_bytes: 1 << 20 }, 't').ring_buffer_bytes, 1 << 20);
  });

  test('several problems are all reported', () => {
    const e = configError(() => validateConfig({ max_payload: 1, ring_buffer_bytes: 5000 }, 't'));
    assert.match(e.message, /max_payload:/);
    assert.match(e.message, /ring_buffer_bytes:/);
  });

  test('a non-mapping top level is rejected', () => {
    assert.match(configError(() => validateConfig(42, 't')).message, /top level/);
    assert.match(configError(() => validateConfig([], 't')).message, /top level/);
  });
});

describe('parsePortsFlag', () => {
  test('good values', () => {
    assert.deepEqual(parsePortsFlag('http=8080'), ['http', [8080]]);
    assert.deepEqual(parsePortsFlag('http=8080,8081'), ['http', [8080, 8081]]);
    assert.deepEqual(parsePortsFlag('redis=6379,6380,1'), ['redis', [6379, 6380, 1]]);
    assert.deepEqual(parsePortsFlag('mysql=65535'), ['mysql', [65535]]);
    assert.deepEqual(parsePortsFlag(' pgsql=5433 '), ['pgsql', [5433]]);
  });

  test('bad values throw ConfigError', () => {
    for (const bad of ['', 'http', 'http=', '=80', 'http=80,', 'http=,80', 'http=8o', 'http:80', 'ftp=21', 'HTTP=80', 'http=80 81', 'http=-1']) {
      configError(() => parsePortsFlag(bad));
    }
  });

  test('out-of-range ports name the port', () => {
    assert.match(configError(() => parsePortsFlag('http=0')).message, /\b0 is not a TCP port/);
    assert.match(configError(() => parsePortsFlag('http=80,65536')).message, /65536 is not a TCP port/);
  });

  test('the message shows what was given', () => {
    assert.match(configError(() => parsePortsFlag('ftp=21')).message, /"ftp=21"/);
  });
});

describe('readConfigFile', () => {
  test('a valid YAML file', () => {
    const file = writeYaml('max_payload: 1024\nprotocols:\n  http:\n    ports: [8080, 9090]\n');
    const { raw, origin } = readConfigFile(file);
    assert.equal(origin, file);
    assert.deepEqual(raw, { max_payload: 1024, protocols: { http: { ports: [8080, 9090] } } });
    assert.equal(validateConfig(raw, origin).max_payload, 1024);
  });

  test('an empty file is an empty config', () => {
    const file = writeYaml('');
    assert.deepEqual(readConfigFile(file), { raw: {}, origin: file });
    const comments = writeYaml('# nothing here\n');
    assert.deepEqual(readConfigFile(comments).raw, {});
  });

  test('invalid YAML is a ConfigError naming the file', () => {
    const file = writeYaml('protocols:\n  http: [80\n  redis: {\n');
    const e = configError(() => readConfigFile(file));
    assert.match(e.message, /not valid YAML/);
    assert.ok(e.message.includes(file));
  });

  test('a missing explicit file is a ConfigError naming the file', () => {
    const file = path.join(tmp, 'does-not-exist.yml');
    const e = configError(() => readConfigFile(file));
    assert.ok(e.message.includes(file));
  });

  test('an explicit path that is a directory is a ConfigError', () => {
    configError(() => readConfigFile(tmp));
  });

  test('a missing default file means defaults', { skip: fs.existsSync(DEFAULT_CONFIG_PATH) && `${DEFAULT_CONFIG_PATH} exists here` }, () => {
    assert.deepEqual(readConfigFile(undefined), { raw: {}, origin: 'defaults' });
  });
});

describe('loadConfig (cli): flags over the file', () => {
  const file = writeYaml(
    [
      'max_payload: 2048',
      'stats_interval_s: 5',
      'protocols:',
      '  http:',
      '    ports: [8080]',
      '    send_all_headers: true',
      '  redis:',
      '    ports: [7000]',
      '',
    ].join('\n'),
  );

  test('the file alone', () => {
    const c = loadConfig({ config: file });
    assert.equal(c.max_payload, 2048);
    assert.equal(c.stats_interval_s, 5);
    assert.deepEqual(c.protocols.http.ports, [8080]);
    assert.equal(c.protocols.http.send_all_headers, true);
    assert.deepEqual(c.protocols.redis.ports, [7000]);
  });

  test('--ports http=9000 replaces only http\'s ports', () => {
    const c = loadConfig({ config: file, ports: ['http=9000'] });
    assert.deepEqual(c.protocols.http.ports, [9000]);
    assert.equal(c.protocols.http.send_all_headers, true, 'other http settings from the file are kept');
    assert.deepEqual(c.protocols.redis.ports, [7000], 'other protocols from the file are kept');
    assert.deepEqual(c.protocols.mysql.ports, [3306, 3307]);
    assert.equal(c.max_payload, 2048);
  });

  test('repeated --ports for several protocols', () => {
    const c = loadConfig({ config: file, ports: ['http=9000,9001', 'pgsql=5433'] });
    assert.deepEqual(c.protocols.http.ports, [9000, 9001]);
    assert.deepEqual(c.protocols.pgsql.ports, [5433]);
    assert.deepEqual(c.protocols.redis.ports, [7000]);
  });

  test('--max-payload, --stats-interval and --pid override the file', () => {
    const c = loadConfig({ config: file, maxPayload: 512, statsInterval: 0, pid: [10, 20] });
    assert.equal(c.max_payload, 512);
    assert.equal(c.stats_interval_s, 0);
    assert.deepEqual(c.pids, [10, 20]);
  });

  test('flags are validated like the file', () => {
    const e = configError(() => loadConfig({ config: file, maxPayload: 10 }));
    assert.match(e.message, /max_payload:/);
    assert.match(e.message, /and flags/);
    configError(() => loadConfig({ config: file, ports: ['http=0'] }));
    configError(() => loadConfig({ config: file, ports: ['gopher=70'] }));
  });

  test('flags do not change the file\'s raw object for the next load', () => {
    loadConfig({ config: file, ports: ['redis=1'] });
    assert.deepEqual(loadConfig({ config: file }).protocols.redis.ports, [7000]);
  });

  test('a file whose top level is not a mapping', () => {
    const list = writeYaml('- 1\n- 2\n');
    assert.match(configError(() => loadConfig({ config: list })).message, /the top level must be a mapping/);
    const scalar = writeYaml('42\n');
    assert.match(configError(() => loadConfig({ config: scalar })).message, /the top level must be a mapping/);
  });

  test('an unknown key in the file is named', () => {
    const bad = writeYaml('protocols:\n  http:\n    portz: [80]\n');
    assert.match(configError(() => loadConfig({ config: bad, ports: ['redis=6380'] })).message, /protocols\.http\.portz/);
  });
});
