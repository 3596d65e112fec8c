import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { LAUNCHER, launcherNodeFlags } from '../../../src/cli/launcher';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-launcher-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function launcherWith(firstLine: string): string {
  const file = path.join(tmp, `launcher-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, `${firstLine}\n'use strict';\n`);
  return file;
}

describe('launcher', () => {
  test("the launcher's node flags come from its first line: a larger young generation", () => {
    const flags = launcherNodeFlags();
    assert.ok(flags.includes('--max-semi-space-size=32'), `flags: ${flags.join(' ')}`);
  });

  test('the launcher runs as a program (env -S passes node its flags)', () => {
    const out = execFileSync(LAUNCHER, ['--version'], { encoding: 'utf8' });
    assert.match(out.trim(), /^\d+\.\d+\.\d+$/);
  });

  test('a launcher without flags gives none; one with several gives each', () => {
    assert.deepEqual(launcherNodeFlags(launcherWith('#!/usr/bin/env -S node')), []);
    assert.deepEqual(launcherNodeFlags(launcherWith('#!/usr/bin/env -S node --a=1 --b-c')), ['--a=1', '--b-c']);
  });

  test('another first line is an error that quotes it', () => {
    assert.throws(() => launcherNodeFlags(launcherWith('#!/usr/bin/env node --x')), /first line is not .*"#!\/usr\/bin\/env node --x"/);
    assert.throws(() => launcherNodeFlags(launcherWith('#!/usr/bin/env -S node; rm -rf /')), /first line is not/);
  });
});
