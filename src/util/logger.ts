import pino from 'pino';

export type Logger = pino.Logger;

/** The one structured logger: JSON lines on stderr (stdout carries documents). */
export function createLogger(level: string = process.env.PBE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'packetbeat-ebpf' } }, pino.destination({ fd: 2, sync: true }));
}
