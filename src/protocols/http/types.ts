/** One parsed HTTP/1.x message, as the transaction layer needs it. */
export interface HttpMessageBase {
  /** Kernel timestamp (ns) of the event carrying the first byte. */
  startNs: number;
  /** Offset of the first byte in its direction's stream (bytes fed and skipped since the parser began). */
  streamOffset: number;
  /** Kernel timestamp (ns) of the event carrying the last byte. */
  endNs: number;
  /** "1.0" or "1.1". */
  version: string;
  /** The raw start line and headers (latin1), as sent. */
  head: string;
  /** Header fields in order, names lower-cased, values trimmed. */
  headers: Array<[string, string]>;
  /** Bytes of start line + headers + blank line. */
  headerBytes: number;
  /** Bytes of body on the wire (chunked framing included). */
  bodyBytes: number;
  /** Decoded body length (Content-Length, or the sum of chunk sizes). */
  contentLength: number;
  /** Body bytes the agent never saw (gaps); the message is still complete. */
  gapBytes: number;
  /** Up to `maxBodyBytes` of the (de-chunked) body that was captured. */
  body: Buffer;
  /** Human-readable notes (e.g. "Packet loss while capturing the response"). */
  notes: string[];
}

export interface HttpRequest extends HttpMessageBase {
  kind: 'request';
  method: string;
  /** The request-target as sent, e.g. "/path?x=1" or an absolute URI. */
  target: string;
}

export interface HttpResponse extends HttpMessageBase {
  kind: 'response';
  statusCode: number;
  statusPhrase: string;
  /** True when the body ran until the end of the stream (no length). */
  closeDelimited: boolean;
}

export type HttpMessage = HttpRequest | HttpResponse;

export interface HttpParserOptions {
  /** Longest start line + headers accepted before the stream is declared garbage. */
  maxHeaderBytes?: number;
  /** Most body bytes kept per message (the rest is only counted). */
  maxBodyBytes?: number;
  /** Per message (its head is parsed): most body bytes to keep; overrides maxBodyBytes. */
  bodyLimit?: (message: HttpMessage) => number;
}
