/** What can go wrong in `setup`, each kind with its exit code. */

export type FailureKind = 'usage' | 'connection' | 'auth' | 'version' | 'rejected';

/** Exit codes of `packetbeat-ebpf setup` (documented in the README). */
export const EXIT_CODES: Readonly<Record<FailureKind, number>> = {
  usage: 1, // bad flags or configuration
  connection: 2, // connection refused, DNS, TLS, timeout
  auth: 3, // 401 / 403
  version: 4, // too old, or not the product named (e.g. --es pointing at OpenSearch)
  rejected: 5, // the server refused a request (its reason is printed)
};

export class SetupError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'SetupError';
  }
}

interface ClientLikeError {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
  meta?: { statusCode?: number; body?: unknown };
  body?: unknown;
  cause?: { code?: string; message?: string };
}

/** The server's own reason from an Elasticsearch/OpenSearch error body. */
export function errorReason(body: unknown): string | undefined {
  if (typeof body === 'string') return body.slice(0, 500);
  if (!body || typeof body !== 'object') return undefined;
  const b = body as { error?: unknown; message?: unknown };
  if (typeof b.error === 'string') return b.error;
  if (b.error && typeof b.error === 'object') {
    const e = b.error as { type?: string; reason?: string; root_cause?: Array<{ reason?: string }> };
    const reason = e.reason ?? e.root_cause?.[0]?.reason;
    return [e.type, reason].filter(Boolean).join(': ') || undefined;
  }
  if (typeof b.message === 'string') return b.message;
  return undefined;
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'timed out',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate (give its CA with --ca FILE)',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in the chain (give its CA with --ca FILE)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate not trusted (give its CA with --ca FILE)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not name this host',
  CERT_HAS_EXPIRED: 'the certificate has expired',
};

function networkReason(message: string, code?: string): string {
  if (code && NETWORK_CODES[code]) return NETWORK_CODES[code];
  for (const [c, text] of Object.entries(NETWORK_CODES)) if (message.includes(c)) return text;
  if (/self[- ]signed certificate/i.test(message)) return `${message} (give its CA with --ca FILE)`;
  return message;
}

/** Turn a client or HTTP error into a SetupError saying what to do. */
export function classifyError(err: unknown, what: string, url: string): SetupError {
  if (err instanceof SetupError) return err;
  const e = (err ?? {}) as ClientLikeError;
  const status = e.meta?.statusCode ?? e.statusCode;
  const body = e.meta?.body ?? e.body;
  if (e.name === 'ProductNotSupportedError') {
    return new SetupError('version', `${url} is not Elasticsearch (for OpenSearch use --opensearch)`);
  }
  if (status === 401) return new SetupError('auth', `${what} at ${url}: authentication failed (401): check the username/password or API key`);
  if (status === 403) return new SetupError('auth', `${what} at ${url}: not allowed (403): ${errorReason(body) ?? 'the user lacks the privilege'}`);
  if (typeof status === 'number' && status >= 400) {
    return new SetupError('rejected', `${what} at ${url}: HTTP ${status}: ${errorReason(body) ?? e.message ?? 'no reason given'}`);
  }
  if (e.name === 'ConnectionError' || e.name === 'TimeoutError' || e.name === 'NoLivingConnectionsError' || e.code || e.cause?.code) {
    const message = e.message ?? String(err);
    return new SetupError('connection', `cannot reach ${url} (${what}): ${networkReason(e.cause?.message ?? message, e.code ?? e.cause?.code)}`);
  }
  return new SetupError('rejected', `${what} at ${url}: ${e.message ?? String(err)}`);
}

/** "8.15.2" >= "8.0.0"? (numeric parts; pre-release tags ignored) */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i];
  }
  return true;
}
