import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { interfaceIndexes } from '../../../src/agent/packet-mode';
import { ConfigError, validateConfig } from '../../../src/config';

describe('packet mode configuration', () => {
  test('defaults: auto mode, every interface, attribution in every namespace', () => {
    const c = validateConfig({}, 'test');
    assert.equal(c.mode, 'auto');
    assert.deepEqual(c.packet, { interfaces: [], process_attribution: true, all_namespaces: true });
  });

  test('mode and packet keys are validated, naming the bad key', () => {
    assert.equal(validateConfig({ mode: 'packet', packet: { interfaces: ['lo', 'eth0'] } }, 'test').mode, 'packet');
    assert.throws(() => validateConfig({ mode: 'pcap' }, 'f.yml'), (e: Error) => e instanceof ConfigError && /mode:/.test(e.message));
    assert.throws(() => validateConfig({ packet: { interface: ['lo'] } }, 'f.yml'), /packet\.interface: unknown key/);
    assert.throws(() => validateConfig({ packet: { interfaces: [''] } }, 'f.yml'), /packet\.interfaces\.0/);
  });

  test('interface names → indexes from sysfs; an unknown name is an error listing the known ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-sysnet-'));
    try {
      for (const [name, index] of [['lo', 1], ['veth0', 17]] as const) {
        fs.mkdirSync(path.join(dir, name));
        fs.writeFileSync(path.join(dir, name, 'ifindex'), `${index}\n`);
      }
      assert.deepEqual(interfaceIndexes(['veth0', 'lo'], dir), [17, 1]);
      assert.deepEqual(interfaceIndexes([], dir), []);
      assert.throws(() => interfaceIndexes(['eth9'], dir), /no network interface "eth9" \(there are: lo, veth0\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
