import type { Config } from '../config';
import { createHttpModule } from './http';
import { createMysqlModule } from './mysql';
import { createPgsqlModule } from './pgsql';
import { createRedisModule } from './redis';
import type { ProtocolModule, ProtocolName } from './types';

/** The protocol modules enabled by the configuration (only those with a decoder). */
export function createModules(config: Config): Map<ProtocolName, ProtocolModule> {
  const modules = new Map<ProtocolName, ProtocolModule>();
  const { http, mysql, pgsql, redis } = config.protocols;
  if (http.enabled) modules.set('http', createHttpModule(http) as ProtocolModule);
  if (pgsql.enabled) {
    const options = { sendRequest: pgsql.send_request, sendResponse: pgsql.send_response, maxRows: pgsql.max_rows, maxRowLength: pgsql.max_row_length };
    modules.set('pgsql', createPgsqlModule(options) as ProtocolModule);
  }
  if (mysql.enabled) {
    const options = { sendRequest: mysql.send_request, sendResponse: mysql.send_response, maxRows: mysql.max_rows, maxRowLength: mysql.max_row_length };
    modules.set('mysql', createMysqlModule(options) as ProtocolModule);
  }
  if (redis.enabled) {
    const options = {
      sendRequest: redis.send_request,
      sendResponse: redis.send_response,
      queueMaxBytes: redis.queue_max_bytes,
      queueMaxMessages: redis.queue_max_messages,
    };
    modules.set('redis', createRedisModule(options) as ProtocolModule);
  }
  return modules;
}

/** Server port → protocol, for the enabled modules. */
export function portMap(config: Config, modules: ReadonlyMap<ProtocolName, ProtocolModule>): Map<number, ProtocolName> {
  const ports = new Map<number, ProtocolName>();
  for (const name of modules.keys()) for (const p of config.protocols[name].ports) ports.set(p, name);
  return ports;
}
