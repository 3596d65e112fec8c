/**
 * MySQL packet framing for one direction of a connection: 3-byte length +
 * 1-byte sequence id, payloads of 0xffffff continued by the next packet
 * (joined logically: only their length is counted, and only a head of the
 * payload is kept). Gaps inside a payload keep the framing; a gap that runs
 * past the packet in progress loses it, and the framer looks for the next
 * packet start with the caller's `resync` rule.
 */
import { MAX_PACKET } from './constants';

/** One logical packet (physical packets of 0xffffff joined). */
export interface Packet {
  /** Sequence id of the first and of the last physical packet. */
  seq: number;
  lastSeq: number;
  /** Payload length (all physical packets). */
  length: number;
  /** The first bytes of the payload that were captured (at most `keep`; cut at the first gap). */
  head: Buffer;
  /** Payload bytes that were not captured. */
  gapBytes: number;
  /** Some of them were lost (not merely left out by max_payload). */
  lost: boolean;
  /** Bytes on the wire, headers included. */
  wireBytes: number;
  /** Physical packets. */
  physical: number;
  startNs: number;
  endNs: number;
  /** Offset of the first header byte in this direction's stream. */
  streamOffset: number;
}

export type ResyncResult = { at: number } | { scanFrom: number };

export interface FramerHooks {
  /** How many payload bytes of a packet starting with this header to keep. */
  keep(seq: number, length: number): number;
  packet(p: Packet): void;
  /**
   * The framing is lost: `partial` is the packet in progress (its head and the
   * bytes it had so far), `skipped` more bytes were not captured.
   */
  desync(partial: Packet | undefined, skipped: number, lost: boolean, tsNs: number): void;
  /** Bytes passed over while looking for the next packet start. */
  skipped(bytes: number, tsNs: number): void;
  /**
   * Where a packet starts in `buf` (bytes captured since the framing was lost;
   * `chunkStarts` are the offsets where fed chunks began), or from where to look
   * again once more bytes are in.
   */
  resync(buf: Buffer, chunkStarts: readonly number[], from: number): ResyncResult;
}

const EMPTY = Buffer.alloc(0);

/** Bytes kept while looking for a packet start; older ones are passed over. */
export const RESYNC_WINDOW = 64 * 1024;

interface Chunk {
  data: Buffer;
  ts: number;
  /** Offset of data[0] within the resync buffer. */
  at: number;
}

export class PacketFramer {
  /** Stream offset of the next byte. */
  offset = 0;
  mode: 'sync' | 'resync' | 'off' = 'sync';

  private readonly hdr = Buffer.alloc(4);
  private hdrFill = 0;
  private hdrOffset = 0;
  private hdrNs = 0;
  private needHeader = true;
  private physLen = 0;
  private physRemaining = 0;
  private cur: Packet | undefined;
  private keepLen = 0;
  private headWant = 0;
  private headFill = 0;
  private headView: Buffer | undefined;
  private headBuf: Buffer | undefined;

  private chunks: Chunk[] = [];
  private rlen = 0;
  private rStart = 0;
  private scanFrom = 0;

  constructor(private readonly hooks: FramerHooks) {}

  bufferedBytes(): number {
    return this.hdrFill + (this.headBuf ? this.headBuf.length : 0) + this.rlen;
  }

  /** In the middle of a packet. */
  midPacket(): boolean {
    return this.mode === 'sync' && (this.cur !== undefined || this.hdrFill > 0);
  }

  feed(data: Buffer, ts: number): void {
    if (this.mode === 'off') this.offset += data.length;
    else if (this.mode === 'resync') this.resyncFeed(data, ts);
    else this.consume(data, 0, ts);
  }

  gap(length: number, lost: boolean, ts: number): void {
    if (length <= 0) return;
    if (this.mode === 'off') {
      this.offset += length;
      return;
    }
    if (this.mode === 'resync') {
      const dropped = this.rlen;
      this.clearResync();
      this.offset += length;
      this.rStart = this.offset;
      this.hooks.skipped(dropped + length, ts);
      return;
    }
    const cur = this.cur;
    if (cur && !this.needHeader && length <= this.physRemaining) {
      this.offset += length;
      this.physRemaining -= length;
      cur.gapBytes += length;
      cur.lost ||= lost;
      cur.wireBytes += length;
      cur.endNs = ts;
      this.headWant = 0;
      if (this.physRemaining === 0) this.endPhysical();
      return;
    }
    // the gap runs past the packet in progress: where the next one starts is unknown
    const partial = cur ? this.snapshot(cur) : undefined;
    const skipped = length + (cur ? 0 : this.hdrFill);
    if (cur) cur.wireBytes += this.hdrFill;
    this.resetPacket();
    this.offset += length;
    this.mode = 'resync';
    this.rStart = this.offset;
    this.hooks.desync(partial, skipped, lost, ts);
  }

  /** The next byte starts a packet (the caller knows better than the scan). */
  restart(ts: number): void {
    if (this.mode === 'off') return;
    let dropped = this.rlen;
    if (this.mode === 'sync') dropped = (this.cur ? this.cur.wireBytes : 0) + this.hdrFill;
    this.clearResync();
    this.resetPacket();
    this.mode = 'sync';
    if (dropped > 0) this.hooks.skipped(dropped, ts);
  }

  /** The framing is not to be trusted: look for a packet start with the `resync` rule. */
  lose(): void {
    if (this.mode === 'off') return;
    this.clearResync();
    this.resetPacket();
    this.mode = 'resync';
    this.rStart = this.offset;
  }

  /** Stop decoding this direction (bytes are only counted). */
  stop(): void {
    this.clearResync();
    this.resetPacket();
    this.mode = 'off';
  }

  private resetPacket(): void {
    this.cur = undefined;
    this.hdrFill = 0;
    this.needHeader = true;
    this.physRemaining = 0;
    this.headView = undefined;
    this.headBuf = undefined;
    this.headWant = 0;
    this.headFill = 0;
  }

  private clearResync(): void {
    this.chunks = [];
    this.rlen = 0;
    this.scanFrom = 0;
  }

  private snapshot(cur: Packet): Packet {
    return { ...cur, head: this.headSoFar() };
  }

  private headSoFar(): Buffer {
    if (this.headView) return this.headView;
    if (this.headBuf) return this.headBuf.subarray(0, this.headFill);
    return EMPTY;
  }

  private consume(data: Buffer, start: number, ts: number): void {
    const n = data.length;
    let i = start;
    while (i < n && this.mode === 'sync') {
      if (this.needHeader) {
        if (this.hdrFill === 0) {
          this.hdrOffset = this.offset;
          this.hdrNs = ts;
        }
        let len: number;
        let seq: number;
        if (this.hdrFill === 0 && n - i >= 4) {
          len = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16);
          seq = data[i + 3];
          i += 4;
          this.offset += 4;
        } else {
          const take = Math.min(4 - this.hdrFill, n - i);
          data.copy(this.hdr, this.hdrFill, i, i + take);
          this.hdrFill += take;
          i += take;
          this.offset += take;
          if (this.hdrFill < 4) break;
          len = this.hdr[0] | (this.hdr[1] << 8) | (this.hdr[2] << 16);
          seq = this.hdr[3];
        }
        this.hdrFill = 0;
        this.startPhysical(len, seq, ts);
        continue;
      }
      const take = Math.min(this.physRemaining, n - i);
      if (this.headWant > 0) {
        const h = Math.min(take, this.headWant);
        if (this.headFill === 0 && h === this.keepLen && this.physRemaining <= n - i && this.physLen !== MAX_PACKET) {
          // the whole packet is in this chunk: handed over before feed() returns, no copy
          this.headView = data.subarray(i, i + h);
        } else {
          if (!this.headBuf) this.headBuf = Buffer.allocUnsafe(this.keepLen);
          data.copy(this.headBuf, this.headFill, i, i + h);
        }
        this.headFill += h;
        this.headWant -= h;
      }
      i += take;
      this.offset += take;
      this.physRemaining -= take;
      const cur = this.cur!;
      cur.wireBytes += take;
      cur.endNs = ts;
      if (this.physRemaining === 0) this.endPhysical();
    }
    if (i < n) {
      if (this.mode === 'off') this.offset += n - i;
      else if (this.mode === 'resync') this.resyncFeed(data.subarray(i), ts);
    }
  }

  private startPhysical(len: number, seq: number, ts: number): void {
    let cur = this.cur;
    if (!cur) {
      cur = {
        seq,
        lastSeq: seq,
        length: 0,
        head: EMPTY,
        gapBytes: 0,
        lost: false,
        wireBytes: 0,
        physical: 0,
        startNs: this.hdrNs,
        endNs: ts,
        streamOffset: this.hdrOffset,
      };
      this.cur = cur;
      let keep = 0;
      try {
        keep = this.hooks.keep(seq, len);
      } catch {
        keep = 0;
      }
      this.keepLen = Math.max(0, Math.min(len, keep, MAX_PACKET - 1));
      this.headWant = this.keepLen;
      this.headFill = 0;
      this.headView = undefined;
      this.headBuf = undefined;
    }
    cur.lastSeq = seq;
    cur.physical++;
    cur.length += len;
    cur.wireBytes += 4;
    cur.endNs = ts;
    this.physLen = len;
    this.physRemaining = len;
    this.needHeader = false;
    if (len === 0) this.endPhysical();
  }

  private endPhysical(): void {
    this.needHeader = true;
    if (this.physLen === MAX_PACKET) return; // continued by the next packet
    const cur = this.cur!;
    cur.head = this.headSoFar();
    this.cur = undefined;
    this.headView = undefined;
    this.headBuf = undefined;
    this.headWant = 0;
    this.headFill = 0;
    this.hooks.packet(cur);
  }

  private resyncFeed(data: Buffer, ts: number): void {
    if (data.length === 0) return;
    // copied: the caller may reuse its buffer once feed() returns
    this.chunks.push({ data: Buffer.from(data), ts, at: this.rlen });
    this.rlen += data.length;
    this.offset += data.length;
    const buf = this.chunks.length === 1 ? this.chunks[0].data : Buffer.concat(this.chunks.map((c) => c.data));
    const starts = this.chunks.map((c) => c.at);
    const res = this.hooks.resync(buf, starts, this.scanFrom);
    if ('at' in res) {
      const at = Math.max(0, Math.min(res.at, this.rlen));
      const chunks = this.chunks;
      const base = this.rStart;
      this.clearResync();
      this.mode = 'sync';
      this.resetPacket();
      if (at > 0) {
        const last = chunks.filter((c) => c.at < at).pop()!;
        this.hooks.skipped(at, last.ts);
      }
      this.offset = base + at;
      for (const c of chunks) {
        const end = c.at + c.data.length;
        if (end <= at) continue;
        const from = Math.max(0, at - c.at);
        if (this.mode === 'sync') this.consume(c.data, from, c.ts);
        else if (this.mode === 'off') this.offset += c.data.length - from;
        else this.resyncFeed(c.data.subarray(from), c.ts);
      }
      return;
    }
    this.scanFrom = Math.max(0, Math.min(res.scanFrom, this.rlen));
    if (this.rlen > RESYNC_WINDOW) {
      // pass over the oldest bytes: no packet start was found in them
      const drop = Math.max(this.scanFrom, this.rlen - RESYNC_WINDOW / 2);
      const kept: Chunk[] = [];
      for (const c of this.chunks) {
        const end = c.at + c.data.length;
        if (end <= drop) continue;
        const from = Math.max(0, drop - c.at);
        kept.push({ data: c.data.subarray(from), ts: c.ts, at: c.at + from - drop });
      }
      this.chunks = kept;
      this.rlen -= drop;
      this.rStart += drop;
      this.scanFrom = Math.max(0, this.scanFrom - drop);
      this.hooks.skipped(drop, ts);
    }
  }
}
