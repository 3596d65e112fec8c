/**
 * `setup` without a cluster: what it plans from flags and configuration, the
 * usage errors, the export, and how unreachable or refusing servers end
 * (exit codes). The acceptance test against a real node is
 * test/integration/setup.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../../src/config';
import { EXIT_CODES, SetupError, versionAtLeast } from '../../../src/setup/errors';
import { exportFiles } from '../../../src/setup/export';
import { DEFAULT_LIFECYCLE } from '../../../src/setup/index-template';
import { planSetup, runSetup, type SetupFlags } from '../../../src/setup/run';
import { freePort } from '../../helpers/net';

const config = (raw: unknown = {}) => validateConfig(raw, 'test');

function usage(f: SetupFlags, raw?: unknown): string {
  try {
    planSetup(f, config(raw));
  } catch (err) {
    assert.ok(err instanceof SetupError);
    assert.equal(err.kind, 'usage');
    return err.message;
  }
  assert.fail('expected a usage error');
}

describe('setup plan', () => {
  test('nothing to do is a usage error naming the ways to say what', () => {
    assert.match(usage({}), /nothing to set up: give --es URL or --opensearch URL/);
  });

  test('flags: the cluster, and the dashboards server with the cluster credentials', () => {
    const plan = planSetup({ es: 'https://es:9200/', kibana: 'http://kb:5601', username: 'elastic', password: 'pw', ca: ['/ca.pem'] }, config());
    assert.deepEqual(plan.clusters, [{ flavor: 'elasticsearch', hosts: ['https://es:9200'], apiKey: undefined, username: 'elastic', password: 'pw', tls: { caFiles: ['/ca.pem'], verify: true } }]);
    assert.equal(plan.dashboards.length, 1);
    assert.equal(plan.dashboards[0].flavor, 'kibana');
    assert.equal(plan.dashboards[0].username, 'elastic');
    assert.deepEqual(plan.dashboards[0].tls, { caFiles: ['/ca.pem'], verify: true });
    assert.deepEqual(plan.lifecycle, DEFAULT_LIFECYCLE);
  });

  test('configuration: output sections and setup.kibana, flags over both', () => {
    const raw = {
      setup: {
        opensearch_dashboards: { host: 'https://osd:5601', username: 'kb', password: 'kbpw', ssl: { certificate_authorities: ['/osd-ca.pem'] } },
        lifecycle: { rollover_age: '7d', delete_after: '30d' },
      },
    };
    const c = config(raw);
    // the output sections come from the outputs' part of the configuration (merged from the ES output work)
    (c.output as Record<string, unknown>).opensearch = { hosts: ['https://os:9200'], username: 'admin', password: 'admin', ssl: { certificate_authorities: ['/os-ca.pem'] } };
    const plan = planSetup({}, c);
    assert.deepEqual(plan.clusters, [{ flavor: 'opensearch', hosts: ['https://os:9200'], apiKey: undefined, username: 'admin', password: 'admin', tls: { caFiles: ['/os-ca.pem'], verify: true } }]);
    assert.deepEqual(plan.dashboards.map((d) => [d.flavor, d.url, d.username, d.tls.caFiles]), [['opensearch-dashboards', 'https://osd:5601', 'kb', ['/osd-ca.pem']]]);
    assert.deepEqual(plan.lifecycle, { rolloverAge: '7d', rolloverSize: '50gb', deleteAfter: '30d' });
    const flagged = planSetup({ rolloverAge: '1d', username: 'other', password: 'x' }, c);
    assert.equal(flagged.clusters[0].username, 'other');
    assert.equal(flagged.lifecycle.rolloverAge, '1d');
  });

  test('usage errors: credentials twice, half a login, API keys on OpenSearch, bad URLs and durations', () => {
    assert.match(usage({ es: 'http://es:9200', apiKey: 'k', username: 'u', password: 'p' }), /API key or a username\/password, not both/);
    assert.match(usage({ es: 'http://es:9200', username: 'u' }), /a username needs a password/);
    assert.match(usage({ opensearch: 'http://os:9200', apiKey: 'k' }), /OpenSearch has no API keys/);
    assert.match(usage({ es: 'es:9200' }), /--es: "es:9200" must be http:\/\/ or https:\/\//);
    assert.match(usage({ es: 'not a url' }), /is not a URL/);
    assert.match(usage({ es: 'http://es:9200', deleteAfter: '3 months' }), /delete-after "3 months"/);
    assert.throws(() => config({ setup: { lifecycle: { rollover_age: 'weekly' } } }), /setup\.lifecycle\.rollover_age/);
  });

  test('versions compare by number', () => {
    assert.ok(versionAtLeast('8.15.2', '8.0.0'));
    assert.ok(versionAtLeast('9.0.0-SNAPSHOT', '8.0.0'));
    assert.ok(versionAtLeast('2.19.6', '2.0.0'));
    assert.ok(!versionAtLeast('7.17.9', '8.0.0'));
    assert.ok(!versionAtLeast('7.9.3', '7.10.0'));
  });
});

describe('setup run', () => {
  const print = (lines: string[]) => (l: string) => lines.push(l);

  test('--export writes the generated files, nothing else needed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-export-'));
    const lines: string[] = [];
    const code = await runSetup(planSetup({ export: dir }, config()), print(lines));
    assert.equal(code, 0);
    for (const [name, content] of exportFiles(DEFAULT_LIFECYCLE)) assert.equal(fs.readFileSync(path.join(dir, name), 'utf8'), content, name);
    assert.equal(lines.length, 6);
    fs.rmSync(dir, { recursive: true });
  });

  test('an unwritable export directory is a usage error (exit 1)', async () => {
    const file = path.join(os.tmpdir(), `pbe-not-a-dir-${process.pid}`);
    fs.writeFileSync(file, '');
    const lines: string[] = [];
    assert.equal(await runSetup(planSetup({ export: file }, config()), print(lines)), EXIT_CODES.usage);
    assert.match(lines[0], /^export: FAILED: cannot write to/);
    fs.rmSync(file);
  });

  test('connection refused: exit 2, for the cluster and for the dashboards server', async () => {
    const port = await freePort();
    for (const flags of [{ es: `http://127.0.0.1:${port}` }, { opensearch: `http://127.0.0.1:${port}` }, { kibana: `http://127.0.0.1:${port}` }]) {
      const lines: string[] = [];
      assert.equal(await runSetup(planSetup(flags, config()), print(lines)), EXIT_CODES.connection, JSON.stringify(flags));
      assert.match(lines.join('\n'), /connect: FAILED: cannot reach http:\/\/127\.0\.0\.1:\d+ \(connect\): connection refused/);
    }
  });

  test('a missing CA file is a usage error before any request', async () => {
    const lines: string[] = [];
    const code = await runSetup(planSetup({ opensearch: 'https://127.0.0.1:1', ca: ['/nonexistent/ca.pem'] }, config()), print(lines));
    assert.equal(code, EXIT_CODES.usage);
    assert.match(lines.join('\n'), /cannot read CA file \/nonexistent\/ca\.pem/);
  });

  describe('a server that refuses the credentials (401)', () => {
    let server: http.Server;
    let url = '';
    before(async () => {
      // answers like a secured cluster or Kibana does without valid credentials
      server = http.createServer((req, res) => {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="security"' });
        res.end(JSON.stringify({ error: { type: 'security_exception', reason: 'unable to authenticate user [elastic]' }, status: 401 }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    for (const flag of ['es', 'opensearch', 'kibana'] as const) {
      test(`--${flag}: exit 3, saying authentication failed`, async () => {
        const lines: string[] = [];
        const code = await runSetup(planSetup({ [flag]: url, username: 'elastic', password: 'wrong' }, config()), print(lines));
        assert.equal(code, EXIT_CODES.auth, lines.join('\n'));
        assert.match(lines.join('\n'), /authentication failed \(401\)/);
      });
    }
  });
});
