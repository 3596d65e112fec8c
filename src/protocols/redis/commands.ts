/**
 * Redis command knowledge: command names (for content detection of inline
 * commands), container commands whose second word is a subcommand (method
 * "CONFIG GET"), and blocking commands (whose reply may legitimately come much
 * later than the transaction timeout).
 */

/** Redis 7 command names (upper-case), plus a few common module/older ones. */
const COMMAND_NAMES = `
ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITFIELD_RO BITOP BITPOS
BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND
CONFIG COPY DBSIZE DEBUG DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EVALSHA_RO EVAL_RO
EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME FAILOVER FCALL FCALL_RO FLUSHALL FLUSHDB FUNCTION
GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER GEORADIUSBYMEMBER_RO GEORADIUS_RO
GEOSEARCH GEOSEARCHSTORE GET GETBIT GETDEL GETEX GETRANGE GETSET HDEL HELLO HEXISTS HEXPIRE
HGET HGETALL HGETDEL HGETEX HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HPERSIST HPEXPIRE
HRANDFIELD HSCAN HSET HSETEX HSETNX HSTRLEN HTTL HVALS INCR INCRBY INCRBYFLOAT INFO KEYS
LASTSAVE LATENCY LCS LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP LPOS LPUSH LPUSHX LRANGE
LREM LSET LTRIM MEMORY MGET MIGRATE MODULE MONITOR MOVE MSET MSETNX MULTI OBJECT PERSIST
PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFDEBUG PFMERGE PFSELFTEST PING PSETEX
PSUBSCRIBE PSYNC PTTL PUBLISH PUBSUB PUNSUBSCRIBE QUIT RANDOMKEY READONLY READWRITE RENAME
RENAMENX REPLCONF REPLICAOF RESET RESTORE RESTORE-ASKING ROLE RPOP RPOPLPUSH RPUSH RPUSHX
SADD SAVE SCAN SCARD SCRIPT SDIFF SDIFFSTORE SELECT SENTINEL SET SETBIT SETEX SETNX
SETRANGE SHUTDOWN SINTER SINTERCARD SINTERSTORE SISMEMBER SLAVEOF SLOWLOG SMEMBERS
SMISMEMBER SMOVE SORT SORT_RO SPOP SPUBLISH SRANDMEMBER SREM SSCAN SSUBSCRIBE STRLEN
SUBSCRIBE SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB SYNC TIME TOUCH TTL TYPE UNLINK
UNSUBSCRIBE UNWATCH WAIT WAITAOF WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL XGROUP XINFO XLEN
XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT ZDIFF ZDIFFSTORE
ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER
ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK
ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNION
ZUNIONSTORE
`;

export const REDIS_COMMANDS: ReadonlySet<string> = new Set(COMMAND_NAMES.split(/\s+/).filter((w) => w.length > 0));

/** Longest command name in the table. */
export const MAX_COMMAND_LENGTH = Math.max(...[...REDIS_COMMANDS].map((c) => c.length));

/** Commands whose second word names a subcommand ("CONFIG GET", "CLIENT SETNAME", "XINFO STREAM"). */
export const CONTAINER_COMMANDS: ReadonlySet<string> = new Set([
  'ACL',
  'CLIENT',
  'CLUSTER',
  'COMMAND',
  'CONFIG',
  'DEBUG',
  'FUNCTION',
  'LATENCY',
  'MEMORY',
  'MODULE',
  'OBJECT',
  'PUBSUB',
  'SCRIPT',
  'SENTINEL',
  'SLOWLOG',
  'XGROUP',
  'XINFO',
]);

/** A plausible subcommand word: letters, digits, '-', '_' (e.g. "GET", "SETNAME", "CREATECONSUMER", "HELP"). */
export function isSubcommandWord(w: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(w);
}

/** Pub/sub commands and the reply kind that confirms them. */
export const SUBSCRIBE_KINDS: ReadonlyMap<string, string> = new Map([
  ['SUBSCRIBE', 'subscribe'],
  ['PSUBSCRIBE', 'psubscribe'],
  ['SSUBSCRIBE', 'ssubscribe'],
  ['UNSUBSCRIBE', 'unsubscribe'],
  ['PUNSUBSCRIBE', 'punsubscribe'],
  ['SUNSUBSCRIBE', 'sunsubscribe'],
]);

/** Confirmation kinds (first element of a subscribe/unsubscribe confirmation). */
export const CONFIRMATION_KINDS: ReadonlySet<string> = new Set(SUBSCRIBE_KINDS.values());

/** Out-of-band pub/sub deliveries and how many elements they have. */
export const MESSAGE_KINDS: ReadonlyMap<string, number> = new Map([
  ['message', 3],
  ['smessage', 3],
  ['pmessage', 4],
]);

function seconds(s: string | undefined): number {
  if (s === undefined) return Infinity;
  const v = Number(s);
  if (!Number.isFinite(v) || v < 0) return Infinity;
  return v === 0 ? Infinity : v * 1e9;
}

function millis(s: string | undefined): number {
  if (s === undefined) return Infinity;
  const v = Number(s);
  if (!Number.isFinite(v) || v < 0) return Infinity;
  return v === 0 ? Infinity : v * 1e6;
}

/**
 * How long (ns) a request may legitimately wait for its reply because the
 * server blocks on it (BLPOP key 5 → 5 s; a timeout of 0 blocks forever), or 0
 * for ordinary commands. `args` are the command words as sent; `argc` their count
 * (args may hold fewer when the request was too long to keep whole).
 */
export function blockingNs(command: string, args: ReadonlyArray<string>, argc: number): number {
  const all = args.length === argc;
  switch (command) {
    case 'BLPOP':
    case 'BRPOP':
    case 'BRPOPLPUSH':
    case 'BLMOVE':
    case 'BZPOPMIN':
    case 'BZPOPMAX':
      return seconds(all ? args[argc - 1] : undefined);
    case 'BLMPOP':
    case 'BZMPOP':
      return seconds(args[1]);
    case 'WAIT':
      return millis(args[2]);
    case 'WAITAOF':
      return millis(args[3]);
    case 'XREAD':
    case 'XREADGROUP': {
      for (let i = 1; i < args.length - 1; i++) {
        if (args[i].toUpperCase() === 'BLOCK') return millis(args[i + 1]);
        if (args[i].toUpperCase() === 'STREAMS') return 0;
      }
      return 0;
    }
    default:
      return 0;
  }
}
