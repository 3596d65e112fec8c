import type { TxnDocument } from '../publish/document';

export interface OutputStats {
  published: number;
  dropped: number;
  /** Bytes or documents waiting in this output. */
  queued: number;
}

/** Where documents go. `publish` never throws; failures are counted. */
export interface Output {
  readonly name: string;
  publish(docs: TxnDocument[]): void;
  /** Resolves when what was published so far is delivered (or given up on). */
  flush(): Promise<void>;
  /** True while the output holds more than it should: the capture pauses until `flush` resolves. */
  full?(): boolean;
  stats(): OutputStats;
  /** Shutdown: deliver what is held (the caller bounds the wait) and release connections and timers. */
  close?(): Promise<void>;
}
