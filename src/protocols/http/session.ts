import type { MessageSpan, ProtocolSession, ProtocolTransaction, Sender, TransactionSink } from '../types';
import { createHttpParser } from './parser';
import type { HttpMessage, HttpParserOptions, HttpRequest, HttpResponse } from './types';

/** Decoded messages of one HTTP transaction. */
export interface HttpData {
  request?: HttpRequest;
  response?: HttpResponse;
}

/** Most requests waiting for their response on one connection. */
const MAX_PENDING = 1024;

function span(m: HttpMessage): MessageSpan {
  return { startNs: m.startNs, endNs: m.endNs, bytes: m.headerBytes + m.bodyBytes, streamOffset: m.streamOffset };
}

function transaction(request: HttpRequest | undefined, response: HttpResponse | undefined, notes: string[]): ProtocolTransaction<HttpData> {
  return {
    request: request && span(request),
    response: response && span(response),
    notes: [...(request?.notes ?? []), ...(response?.notes ?? []), ...notes],
    data: { request, response },
  };
}

/** HTTP/1.x on one connection: the parser plus FIFO pairing (pipelining included). */
export function createHttpSession(sink: TransactionSink<HttpData>, options: HttpParserOptions = {}): ProtocolSession {
  const pending: HttpRequest[] = [];
  const unmatched = (r: HttpRequest) => sink.onTransaction(transaction(r, undefined, ['Unmatched request']));
  const parser = createHttpParser(
    {
      onMessage(msg) {
        if (msg.kind === 'request') {
          if (pending.length >= MAX_PENDING) unmatched(pending.shift()!);
          pending.push(msg);
          return;
        }
        // interim responses (100 Continue, 103 Early Hints) do not answer the request
        if (msg.statusCode >= 100 && msg.statusCode < 200 && msg.statusCode !== 101) return;
        const request = pending.shift();
        sink.onTransaction(transaction(request, msg, request ? [] : ['Unmatched response']));
      },
      onError: (reason, fatal) => sink.onError(reason, fatal),
    },
    options,
  );
  return {
    feed: (from: Sender, data: Buffer, tsNs: number) => parser.feed(from, data, tsNs),
    gap: (from: Sender, length: number, tsNs: number, lost?: boolean) => parser.gap(from, length, tsNs, lost),
    end: (from: Sender, tsNs: number) => parser.end(from, tsNs),
    bufferedBytes: () => parser.bufferedBytes(),
    pending: () => pending.length,
    expire(beforeNs) {
      while (pending.length > 0 && pending[0].endNs < beforeNs) unmatched(pending.shift()!);
    },
    close(tsNs) {
      parser.end('client', tsNs);
      parser.end('server', tsNs); // completes a response delimited by the close
      while (pending.length > 0) unmatched(pending.shift()!);
    },
  };
}
