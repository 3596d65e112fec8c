import type { TxnDocument } from '../publish/document';

export interface OutputStats {
  /** Documents delivered (for a backend: acknowledged, duplicates included). */
  published: number;
  /** Documents lost by this output (bounds exceeded, nowhere to keep them). */
  dropped: number;
  /** Bytes or documents waiting in this output. */
  queued: number;
  /** Output-specific counters (retried, spooled, rejected, ...). */
  [counter: string]: number;
}

/** Where documents go. `publish` never throws; failures are counted. */
export interface Output {
  readonly name: string;
  /** Reads `viewsOf(doc)` (full-precision view timings): the pipeline links them only for such outputs. */
  readonly wantsViews?: boolean;
  publish(docs: TxnDocument[]): void;
  /**
   * Resolves when what was published so far is delivered, or kept safe on disk
   * for a later delivery (a backend's spool), or given up on (counted).
   */
  flush(): Promise<void>;
  /** True while the output holds more than it should: the capture pauses until `flush` resolves. */
  full?(): boolean;
  /**
   * Stop delivering: keep what is left on disk where the output can (counted as
   * spooled), count the rest as dropped, release connections. Called once, after flush.
   */
  close?(): Promise<void>;
  stats(): OutputStats;
  /** Shutdown: deliver what is held (the caller bounds the wait) and release connections and timers. */
  close?(): Promise<void>;
}
