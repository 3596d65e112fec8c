import * as fs from 'node:fs';
import * as path from 'node:path';

/** The agent's launcher, what `packetbeat-ebpf` on the PATH links to. */
export const LAUNCHER = path.resolve(__dirname, '../../../bin/packetbeat-ebpf');

const SHEBANG = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)[ \t]*$/;

/**
 * Node's flags on the launcher's first line (`#!/usr/bin/env -S node <flags>`),
 * the one place they are set: benchmarks start the agent as
 * `node <flags> bin/packetbeat-ebpf`, as the launcher runs it. (They are V8's
 * heap sizes, fixed when the isolate is made: they cannot be set from inside.)
 */
export function launcherNodeFlags(launcher = LAUNCHER): string[] {
  const first = fs.readFileSync(launcher, 'utf8').split('\n', 1)[0];
  const m = SHEBANG.exec(first);
  if (!m) throw new Error(`${launcher}: its first line is not "#!/usr/bin/env -S node [--flag[=value] ...]": ${JSON.stringify(first)}`);
  return m[1].split(' ').filter((f) => f !== '');
}
