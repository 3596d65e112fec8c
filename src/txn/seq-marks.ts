/**
 * Where each byte of one direction of a socket passed, in time: the sequence
 * range of every data event with its kernel timestamp. When both ends of a
 * connection are traced, only the client's socket is parsed; the server's view
 * of each transaction is timed from these marks (both ends see the same TCP
 * sequence numbers), which halves the decoding work of loopback traffic.
 */
const HALF = 0x80000000;

interface Mark {
  seq: number;
  len: number;
  ts: number;
}

export class SeqMarks {
  private marks: Mark[] = [];
  private dropped = 0;

  constructor(private readonly max = 8192) {}

  add(seq: number, len: number, ts: number): void {
    if (len <= 0) return;
    this.marks.push({ seq: seq >>> 0, len, ts });
    if (this.marks.length > this.max) {
      this.marks.shift();
      this.dropped++;
    }
  }

  /** Timestamp of the event that carried byte `seq`, or undefined when not (yet) seen. */
  tsOf(seq: number): number | undefined {
    for (const m of this.marks) {
      if (((seq - m.seq) >>> 0) < m.len) return m.ts;
    }
    return undefined;
  }

  /** Has a byte at or after `seq` been seen? Then a missing `seq` will never come (lost). */
  passed(seq: number): boolean {
    const last = this.marks[this.marks.length - 1];
    if (!last) return false;
    const end = (last.seq + last.len) >>> 0;
    return ((end - seq) >>> 0) < HALF && end !== seq;
  }

  /** Forget the marks that end at or before `seq`. */
  trimBefore(seq: number): void {
    let n = 0;
    while (n < this.marks.length) {
      const m = this.marks[n];
      const end = (m.seq + m.len) >>> 0;
      if (((seq - end) >>> 0) >= HALF) break; // this mark ends after seq
      n++;
    }
    if (n > 0) this.marks.splice(0, n);
  }

  get size(): number {
    return this.marks.length;
  }

  /** Marks forgotten because the bound was reached. */
  get evicted(): number {
    return this.dropped;
  }
}
