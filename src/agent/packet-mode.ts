import * as fs from 'node:fs';
import { CaptureStartError } from '../capture/ebpf-source';
import { createAttributor, type Attributor } from '../capture/packet/attribution';
import { loadPacketBinding } from '../capture/packet/addon';
import { createPacketSource, type PacketSource } from '../capture/packet/source';
import { drainIntervalMs, drainMinIntervalMs, type Config } from '../config';
import { createModules, portMap } from '../protocols/registry';
import { PROTOCOL_IDS } from '../protocols/types';
import type { Logger } from '../util/logger';

/** Interface names → indexes, from sysfs; a name that is not there is an error. */
export function interfaceIndexes(names: string[], sysClassNet = '/sys/class/net'): number[] {
  return names.map((name) => {
    let text: string;
    try {
      text = fs.readFileSync(`${sysClassNet}/${name}/ifindex`, 'utf8');
    } catch {
      let known: string[] = [];
      try {
        known = fs.readdirSync(sysClassNet);
      } catch {
        // no sysfs: the message says what was asked for
      }
      throw new CaptureStartError(`packet.interfaces: no network interface "${name}"${known.length > 0 ? ` (there are: ${known.join(', ')})` : ''}`, 'ENODEV');
    }
    return Number(text.trim());
  });
}

/**
 * The `packet` capture mode for `run`: AF_PACKET on the configured interfaces
 * (all by default), the protocols' ports in the kernel's filter, processes
 * named from /proc where the sockets are local.
 */
export function createPacketModeSource(config: Config, logger: Logger): PacketSource {
  const log = logger.child({ component: 'packet' });
  const ports = portMap(config, createModules(config));
  if (ports.size === 0) throw new CaptureStartError('packet mode: no protocol is enabled, so no port to capture', undefined);
  const ifindexes = interfaceIndexes(config.packet.interfaces);
  const binding = loadPacketBinding();
  let attributor: Attributor | undefined;
  if (config.packet.process_attribution) {
    try {
      attributor = createAttributor({ openLookup: (nsPath) => new binding.SockDiag(nsPath), allNamespaces: config.packet.all_namespaces });
    } catch (err) {
      // capture still works: documents say their ends are unattributed
      log.warn({ err }, 'process attribution is not available (sock_diag)');
    }
  }
  const source = createPacketSource({
    binding,
    ports: [...ports].map(([port, name]) => [port, PROTOCOL_IDS[name]]),
    isServerPort: (port) => ports.has(port),
    ifindexes,
    maxPayload: config.max_payload,
    ringBytes: config.ring_buffer_bytes,
    wakeupBytes: config.wakeup_bytes,
    drainIntervalMs: drainIntervalMs(config, 'packet'),
    drainMinIntervalMs: drainMinIntervalMs(config, 'packet'),
    attributor,
    pids: config.pids,
    debug: process.env.PBE_LIBBPF_DEBUG === '1',
    onDecodeError: (err) => log.error({ err }, 'bad packet batch'),
  });
  if (config.infer_protocols) log.debug('packet mode: protocols are recognised on their configured ports only');
  log.info({ interfaces: config.packet.interfaces.length > 0 ? config.packet.interfaces : 'all', attribution: attributor !== undefined }, 'packet capture attached');
  return source;
}
