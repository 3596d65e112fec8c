import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN } from './agent';

/** Can this machine run the packet-mode tests? From `check`'s real probes, not the uid. */
export function packetSkip(): string | false {
  let out = '';
  try {
    out = execFileSync(process.execPath, [BIN, 'check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    out = (err as { stdout?: string }).stdout ?? (err as Error).message;
  }
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!/^\s*yes\s+ring buffer/m.test(out)) missing.push('BPF ring buffer');
  if (!/^\s*yes\s+AF_PACKET socket filter/m.test(out)) missing.push('AF_PACKET socket filter');
  if (missing.length === 0) return false;
  const reason = `packet mode needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`CI=true but the packet tests cannot run here: ${reason}`);
  return reason;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A network namespace joined to this one by a veth pair: host end .1, namespace end .2 of 10.213.N.0/24. */
export interface VethNamespace {
  name: string;
  hostIf: string;
  hostIp: string;
  nsIp: string;
  /** Run a command inside the namespace. */
  spawn(cmd: string, args: string[]): ChildProcess;
  remove(): void;
}

export function createVethNamespace(n: number): VethNamespace {
  const name = `pbe-pkt-${n}`;
  const hostIf = `pbe-h${n}`;
  const nsIf = `pbe-n${n}`;
  const hostIp = `10.213.${n}.1`;
  const nsIp = `10.213.${n}.2`;
  const remove = () => {
    for (const args of [['link', 'del', hostIf], ['netns', 'del', name]]) {
      try {
        ip(args);
      } catch {
        // not there (a previous run cleaned up, or never got this far)
      }
    }
  };
  remove();
  ip(['netns', 'add', name]);
  ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
  ip(['link', 'set', nsIf, 'netns', name]);
  ip(['addr', 'add', `${hostIp}/24`, 'dev', hostIf]);
  ip(['link', 'set', hostIf, 'up']);
  ip(['netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/24`, 'dev', nsIf]);
  ip(['netns', 'exec', name, 'ip', 'link', 'set', nsIf, 'up']);
  ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  return {
    name,
    hostIf,
    hostIp,
    nsIp,
    spawn: (cmd, args) => spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'] }),
    remove,
  };
}

/** Resolve once something accepts connections at host:port. */
export async function waitForEndpoint(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A Node HTTP server script: /hello, /slow (answers after 300 ms), anything else 404. */
export function writeServerScript(host: string, port: number): { script: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-pktsrv-'));
  const script = path.join(dir, 'server.js');
  fs.writeFileSync(
    script,
    `require('node:http').createServer((req, res) => {
  req.resume();
  if (req.url === '/hello') res.end('hello from the namespace\\n');
  else if (req.url === '/slow') setTimeout(() => res.end('slow\\n'), 300);
  else { res.statusCode = 404; res.end('not found\\n'); }
}).listen(${port}, '${host}');
`,
  );
  return { script, dir };
}

/** Frames that lie about their headers, sent on loopback to `port` (python3, AF_PACKET). */
export function sendHostileFrames(port: number, count: number, seed: number): void {
  const program = String.raw`
import random, socket, struct, sys
port, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('lo', 0))
eth4 = b'\0' * 12 + b'\x08\x00'
eth6 = b'\0' * 12 + b'\x86\xdd'
vlan = b'\0' * 12 + b'\x81\x00\x00\x2a\x08\x00'
lo4 = bytes([127, 0, 0, 1])
lo6 = bytes(15) + b'\x01'
def tcp(sport, doff=5, flags=0x18, extra=b''):
    return struct.pack('!HHIIBBHHH', sport, port, rnd.getrandbits(32), 0, doff << 4, flags, 65535, 0, 0) + extra
def ip4(payload, ihl=5, tot=None, frag=0, proto=6):
    tot = 20 + len(payload) if tot is None else tot
    return struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, tot & 0xffff, 0, frag, 64, proto, 0, lo4, lo4) + payload
def ip6(payload, nh=6, plen=None):
    plen = len(payload) if plen is None else plen
    return struct.pack('!IHBB16s16s', 0x60000000, plen & 0xffff, nh, 64, lo6, lo6) + payload
def junk(n):
    return bytes(rnd.getrandbits(8) for _ in range(n))
for i in range(count):
    sport = rnd.randrange(1024, 65535)
    k = i % 10
    if k == 0: f = eth4 + ip4(tcp(sport), ihl=15)                 # IP header longer than the packet
    elif k == 1: f = eth4 + ip4(tcp(sport, doff=15))              # TCP header longer than the packet
    elif k == 2: f = eth4 + ip4(tcp(sport, doff=2))               # TCP header shorter than possible
    elif k == 3: f = eth4 + ip4(tcp(sport, extra=junk(200)), tot=60000)  # length claims 60000 bytes
    elif k == 4: f = eth4 + ip4(tcp(sport)[:7])                   # cut inside the TCP header
    elif k == 5: f = eth4 + ip4(tcp(sport, extra=junk(100)), frag=0x2001)  # a later fragment
    elif k == 6: f = eth6 + ip6(bytes([60, 255]) + junk(30), nh=60)  # extension header past the end
    elif k == 7: f = eth6 + ip6(bytes([0, 0]) * 3 + junk(10), nh=0)  # a chain of hop-by-hop headers
    elif k == 8: f = vlan + ip4(tcp(sport, extra=junk(50)))       # in-band VLAN tag
    else: f = eth4 + ip4(tcp(sport, extra=junk(rnd.randrange(1, 1400))))  # garbage payload to the port
    s.send(f)
`;
  execFileSync('python3', ['-c', program, String(port), String(count), String(seed)], { stdio: ['ignore', 'ignore', 'pipe'] });
}
