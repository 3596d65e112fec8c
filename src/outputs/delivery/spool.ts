/**
 * The disk spool of a backend output: one file per batch, named by the batch's
 * sequence number so that listing the directory gives the delivery order.
 *
 *   <dir>/00000000000000000042.batch   header line, then the bulk body
 *   <dir>/corrupt/…                     files that failed their check, kept aside
 *   <dir>/.lock                         pid of the agent using the directory
 *
 * Header: {"packetbeat_ebpf_spool":1,"seq":42,"docs":N,"sha256":"<hex of the body>"}.
 * Body: per document an action line {"create":{"_index":…,"_id":…}} and the
 * document line, i.e. exactly what a bulk request sends.
 * A batch is written to `<name>.tmp`, fsynced, then renamed: a file with the final
 * name is complete. It is deleted only once the backend acknowledged it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeliveryRecord } from './types';

export const SPOOL_FORMAT = 1;
const SEQ_DIGITS = 20;
const BATCH_SUFFIX = '.batch';
const TMP_SUFFIX = '.tmp';
const CORRUPT_DIR = 'corrupt';
const LOCK_FILE = '.lock';
/** A batch's file is its records' bytes plus the header line and the action lines' framing (canHold's margin). */
const HEADER_ALLOWANCE = 256;
/** Bytes read to find a file's header when scanning. */
const HEADER_PEEK_BYTES = 4096;

export class SpoolError extends Error {}

export interface SpoolEntry {
  seq: number;
  file: string;
  docs: number;
  bytes: number;
  /** Left by a crash while it was being written (a .tmp file): read it as suspect. */
  partial?: boolean;
}

export type SpoolRead =
  | { status: 'ok'; records: DeliveryRecord[] }
  /** The file failed its checks: it was moved to `keptAt`; `records` are the documents that could still be read. */
  | { status: 'corrupt'; records: DeliveryRecord[]; reason: string; keptAt: string; unreadableLines: number };

export interface Spool {
  readonly dir: string;
  /** Batches on disk, oldest first (as found at open, plus those written since). */
  entries(): readonly SpoolEntry[];
  bytes(): number;
  docs(): number;
  /** Whether `bytes` more fit under the bound. */
  canHold(bytes: number): boolean;
  /** Write a batch; resolves once it is durable. Throws SpoolError on I/O failure. */
  write(seq: number, records: readonly DeliveryRecord[]): Promise<SpoolEntry>;
  read(entry: SpoolEntry): Promise<SpoolRead>;
  /** Delete an acknowledged batch. */
  remove(entry: SpoolEntry): Promise<void>;
  /** Release the directory (the lock). */
  close(): void;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
}

export function seqFileName(seq: number, suffix = BATCH_SUFFIX): string {
  return String(seq).padStart(SEQ_DIGITS, '0') + suffix;
}

/** The spool file's text for a batch (header line + bulk body). */
export function encodeBatch(seq: number, records: readonly DeliveryRecord[]): string {
  let body = '';
  for (const r of records) body += JSON.stringify({ create: { _index: r.index, _id: r.id } }) + '\n' + r.source + '\n';
  const sha256 = createHash('sha256').update(body).digest('hex');
  return JSON.stringify({ packetbeat_ebpf_spool: SPOOL_FORMAT, seq, docs: records.length, sha256 }) + '\n' + body;
}

interface Header {
  packetbeat_ebpf_spool: number;
  seq: number;
  docs: number;
  sha256: string;
}

function parseHeader(line: string): Header | undefined {
  try {
    const h = JSON.parse(line) as Partial<Header>;
    if (h.packetbeat_ebpf_spool !== SPOOL_FORMAT || typeof h.seq !== 'number' || typeof h.docs !== 'number' || typeof h.sha256 !== 'string') return undefined;
    return h as Header;
  } catch {
    return undefined;
  }
}

function actionOf(line: string): { index: string; id: string } | undefined {
  try {
    const a = JSON.parse(line) as { create?: { _index?: unknown; _id?: unknown } };
    if (typeof a.create?._index === 'string' && typeof a.create._id === 'string') return { index: a.create._index, id: a.create._id };
  } catch {
    // not an action line
  }
  return undefined;
}

function isJsonObjectLine(line: string): boolean {
  if (!line.startsWith('{')) return false;
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/**
 * Read the documents of a batch body. Trusted (checksum good): action lines parsed,
 * document lines passed through. Suspect: every pair checked; what does not parse is
 * skipped and counted (a truncated last document, flipped bytes).
 */
export function decodeBody(body: string, trusted: boolean): { records: DeliveryRecord[]; unreadableLines: number } {
  const lines = body.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const records: DeliveryRecord[] = [];
  let unreadableLines = 0;
  for (let i = 0; i < lines.length; ) {
    const action = actionOf(lines[i]);
    if (!action) {
      unreadableLines++;
      i++;
      continue;
    }
    const source = lines[i + 1];
    if (source === undefined || (!trusted && !isJsonObjectLine(source))) {
      unreadableLines += source === undefined ? 1 : 2;
      i += 2;
      continue;
    }
    records.push({ index: action.index, id: action.id, source });
    i += 2;
  }
  return { records, unreadableLines };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the directory for this process; another live agent holding it is an error. */
function lock(dir: string): string {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new SpoolError(`cannot lock spool directory ${dir}: ${(err as Error).message}`);
    }
    const holder = Number(fs.readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
      throw new SpoolError(`spool directory ${dir} is in use by process ${holder} (another agent?); give each agent its own spool.dir`);
    }
    fs.rmSync(file, { force: true }); // left by an agent that is gone
  }
  throw new SpoolError(`cannot lock spool directory ${dir}`);
}

function scan(dir: string): SpoolEntry[] {
  const entries: SpoolEntry[] = [];
  const name = new RegExp(`^(\\d{${SEQ_DIGITS}})(\\${BATCH_SUFFIX}|\\${TMP_SUFFIX})$`);
  for (const f of fs.readdirSync(dir)) {
    const m = name.exec(f);
    if (!m) continue;
    const file = path.join(dir, f);
    const st = fs.statSync(file);
    const entry: SpoolEntry = { seq: Number(m[1]), file, docs: 0, bytes: st.size };
    if (m[2] === TMP_SUFFIX) entry.partial = true;
    // the header's count, when the head of the file is readable
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(Math.min(HEADER_PEEK_BYTES, st.size));
      fs.readSync(fd, head, 0, head.length, 0);
      const nl = head.indexOf(0x0a);
      const header = nl > 0 ? parseHeader(head.subarray(0, nl).toString('utf8')) : undefined;
      if (header) entry.docs = header.docs;
    } finally {
      fs.closeSync(fd);
    }
    entries.push(entry);
  }
  // a .tmp beside the complete file of the same batch is an unfinished second copy
  entries.sort((a, b) => a.seq - b.seq || Number(a.partial ?? false) - Number(b.partial ?? false));
  return entries.filter((e, i) => {
    if (i === 0 || e.seq !== entries[i - 1].seq || !e.partial) return true;
    fs.rmSync(e.file, { force: true });
    return false;
  });
}

export function openSpool({ dir, maxBytes }: SpoolOptions): Spool {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SpoolError(`cannot create spool directory ${dir}: ${(err as Error).message}`);
  }
  const lockFile = lock(dir);
  let entries: SpoolEntry[];
  try {
    entries = scan(dir);
  } catch (err) {
    fs.rmSync(lockFile, { force: true });
    throw new SpoolError(`cannot read spool directory ${dir}: ${(err as Error).message}`);
  }
  let bytes = entries.reduce((n, e) => n + e.bytes, 0);
  /** Bytes of writes under way: counted against the bound before they land. */
  let reserved = 0;
  let docs = entries.reduce((n, e) => n + e.docs, 0);
  let closed = false;

  const forget = (entry: SpoolEntry) => {
    const i = entries.indexOf(entry);
    if (i < 0) return;
    entries.splice(i, 1);
    bytes -= entry.bytes;
    docs -= entry.docs;
  };

  /** Move a file that failed its checks out of the way, under corrupt/ (never deleted). */
  const keepAside = (entry: SpoolEntry): string => {
    const aside = path.join(dir, CORRUPT_DIR);
    fs.mkdirSync(aside, { recursive: true, mode: 0o700 });
    const target = path.join(aside, `${path.basename(entry.file)}.${Date.now()}`);
    fs.renameSync(entry.file, target);
    return target;
  };

  return {
    dir,
    entries: () => entries,
    bytes: () => bytes,
    docs: () => docs,
    canHold: (n) => bytes + reserved + n + HEADER_ALLOWANCE <= maxBytes,

    async write(seq, records) {
      if (closed) throw new SpoolError('spool is closed');
      const text = encodeBatch(seq, records);
      const size = Buffer.byteLength(text);
      if (bytes + reserved + size > maxBytes) throw new SpoolError(`spool ${dir} is full (${bytes + reserved} of ${maxBytes} bytes)`);
      const file = path.join(dir, seqFileName(seq));
      const tmp = path.join(dir, seqFileName(seq, TMP_SUFFIX));
      reserved += size;
      try {
        const fh = await fs.promises.open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(text);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.promises.rename(tmp, file);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        throw new SpoolError(`cannot write spool file ${file}: ${(err as Error).message}`);
      } finally {
        reserved -= size;
      }
      const entry: SpoolEntry = { seq, file, docs: records.length, bytes: size };
      // keep the list in sequence order (a batch being retried may be older than the last written)
      let i = entries.length;
      while (i > 0 && entries[i - 1].seq > seq) i--;
      entries.splice(i, 0, entry);
      bytes += entry.bytes;
      docs += entry.docs;
      return entry;
    },

    async read(entry) {
      let text: string;
      try {
        text = await fs.promises.readFile(entry.file, 'utf8');
      } catch (err) {
        throw new SpoolError(`cannot read spool file ${entry.file}: ${(err as Error).message}`);
      }
      const nl = text.indexOf('\n');
      const header = nl > 0 ? parseHeader(text.slice(0, nl)) : undefined;
      const body = nl >= 0 ? text.slice(nl + 1) : text;
      let problem: string | undefined;
      if (entry.partial) problem = 'left unfinished by a crash while it was being written';
      else if (!header) problem = 'its header is missing or not a packetbeat-ebpf spool header';
      else if (header.seq !== entry.seq) problem = `its header names batch ${header.seq}, its file name ${entry.seq}`;
      else if (createHash('sha256').update(body).digest('hex') !== header.sha256) problem = 'its checksum does not match (truncated or altered)';
      if (!problem) {
        const { records, unreadableLines } = decodeBody(body, true);
        if (unreadableLines === 0 && records.length === header!.docs) return { status: 'ok', records };
        problem = `${records.length} documents readable where the header says ${header!.docs}`;
      }
      // suspect: salvage every well-formed document, keep the file aside for inspection
      const { records, unreadableLines } = decodeBody(header ? body : text, false);
      forget(entry);
      let keptAt: string;
      try {
        keptAt = keepAside(entry);
      } catch (err) {
        throw new SpoolError(`spool file ${entry.file} is corrupt (${problem}) and cannot be moved aside: ${(err as Error).message}`);
      }
      return { status: 'corrupt', records, reason: problem, keptAt, unreadableLines };
    },

    async remove(entry) {
      await fs.promises.rm(entry.file, { force: true });
      forget(entry);
    },

    close() {
      if (closed) return;
      closed = true;
      fs.rmSync(lockFile, { force: true });
    },
  };
}
