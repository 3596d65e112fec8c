import * as os from 'node:os';
import type { ProcessInfo } from '../conn/process-info';
import { communityId } from '../util/community-id';
import { transactionId } from './event-id';
import { jsonKey, jsonNextKey, jsonNumber, jsonString, jsonValue, shareJson, sharedJson } from './json';
import type { ProtocolModule, ProtocolName } from '../protocols/types';
import type { FlowTuple, Transaction, TransactionView } from '../txn/types';

export const ECS_VERSION = '8.17.0';
export const AGENT_VERSION: string = (require('../../../package.json') as { version: string }).version;

/** A transaction document: ECS/Packetbeat field names, plain JSON. */
export type TxnDocument = Record<string, unknown>;

/**
 * Marks a document as buildDocument made it: nobody edits one after (processors
 * copy it first, with structuredClone or into a new object, and neither copies
 * a symbol), so documentJson may write its fixed parts as they are. A property
 * set in the literal, not an entry per document in a WeakSet: ~4% less
 * pipeline CPU (bench/pipeline's recording, 12 alternating processes; set
 * after the literal, it gained nothing).
 */
const BUILT = Symbol('built by buildDocument');
// [BUILT]'s value: which of its objects keep buildDocument's own shape (no protocol field merged in)
/** network: transport, protocol, type, bytes, community_id and nothing else */
const OWN_NETWORK = 1;
/** related.ip: the document's addresses (the protocol may add other keys after it) */
const OWN_RELATED_IP = 2;
/** The protocol module's writer of its own fields (ProtocolModule.fieldJson), beside [BUILT]. */
const FIELD_JSON = Symbol('the protocol\'s field writer');

export interface DocumentContext {
  /** monotonic ns → wall-clock ms */
  toWallMs(monoNs: number): number;
  hostname: string;
  modules: ReadonlyMap<ProtocolName, ProtocolModule>;
  tags: readonly string[];
  /**
   * Link each document to its views' full-precision timings (`viewsOf`), for
   * outputs that need them (OTLP); false saves the link's cost. Default true.
   */
  keepViews?: boolean;
}

/** Offset between the kernel's CLOCK_MONOTONIC and the wall clock, sampled now. */
export function monotonicToWall(): (monoNs: number) => number {
  const offsetMs = Date.now() - Number(process.hrtime.bigint()) / 1e6;
  return (monoNs) => offsetMs + monoNs / 1e6;
}

// Per-connection and per-process parts are built once and shared by the
// documents (they are only read: serialised, or copied by processors first).
const communityIds = new WeakMap<FlowTuple, string>();
const processDocs = new WeakMap<ProcessInfo, Record<string, unknown>>();
const statics = new WeakMap<DocumentContext, { agent: object; host: object; ecs: object }>();

function flowCommunityId(t: FlowTuple): string {
  let id = communityIds.get(t);
  if (id === undefined) {
    id = communityId(t.clientIp, t.clientPort, t.serverIp, t.serverPort);
    communityIds.set(t, id);
  }
  return id;
}

function processDoc(p: ProcessInfo): Record<string, unknown> {
  let doc = processDocs.get(p);
  if (!doc) {
    doc = shareJson(processFields(p));
    processDocs.set(p, doc);
  }
  return doc;
}

function staticsOf(ctx: DocumentContext) {
  let s = statics.get(ctx);
  if (!s) {
    s = {
      agent: shareJson({ type: 'packetbeat-ebpf', name: ctx.hostname, version: AGENT_VERSION }),
      host: shareJson({ hostname: ctx.hostname, name: ctx.hostname, architecture: os.arch() }),
      ecs: shareJson({ version: ECS_VERSION }),
    };
    statics.set(ctx, s);
  }
  return s;
}

export function processFields(p: ProcessInfo): Record<string, unknown> {
  const out: Record<string, unknown> = { pid: p.pid, name: p.name, parent: { pid: p.ppid } };
  if (p.executable) out.executable = p.executable;
  if (p.args) {
    out.args = p.args;
    out.args_count = p.args.length;
  }
  if (p.workingDirectory) out.working_directory = p.workingDirectory;
  if (p.start) out.start = p.start;
  out.user = p.userName ? { id: String(p.userId), name: p.userName } : { id: String(p.userId) };
  return out;
}

/** Which socket saw a view; 'wire' when it was seen in packets, by no socket. */
function seenBy(v: TransactionView | undefined, side: 'client' | 'server'): string | undefined {
  return v && (v.process ? side : 'wire');
}

// documents come in bursts from the same second: its text is reused, only the ms change
let isoSecond = NaN;
let isoPrefix = '';

/** ISO 8601 UTC with milliseconds, as Date#toISOString (which it calls once per second). */
export function iso(ms: number): string {
  const whole = Math.trunc(ms); // as Date does
  const second = Math.floor(whole / 1000);
  if (second !== isoSecond) {
    const text = new Date(second * 1000).toISOString();
    // years past 9999 have another shape: no reuse for those
    if (text.length !== 24) return new Date(whole).toISOString();
    isoSecond = second;
    isoPrefix = text.slice(0, 20);
  }
  const frac = whole - second * 1000;
  return `${isoPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
}

/**
 * One end's view of a transaction as outputs other than JSON need it (OTLP
 * spans): its wall-clock times at full precision and its process. Documents
 * carry only the main view's times, in ms.
 */
export interface ViewTiming {
  /** Wall-clock ms since the epoch, fractional (sub-µs precision). */
  startMs: number;
  endMs: number;
  durationNs: number;
  /** The owning process; undefined when the view was seen on the wire. */
  process?: ProcessInfo;
}

export interface DocumentViews {
  client?: ViewTiming;
  server?: ViewTiming;
}

// documents are plain JSON: the views travel beside them, without a field
const documentViews = new WeakMap<TxnDocument, DocumentViews>();

/** The views of the transaction a document was built from (undefined for documents from elsewhere). */
export function viewsOf(doc: TxnDocument): DocumentViews | undefined {
  return documentViews.get(doc);
}

/** A processor replaced the document with a copy: the copy keeps the views. */
export function carryViews(from: TxnDocument, to: TxnDocument): void {
  const views = documentViews.get(from);
  if (views) documentViews.set(to, views);
}

function viewTiming(v: TransactionView, ctx: DocumentContext): ViewTiming {
  return { startMs: ctx.toWallMs(v.startNs), endMs: ctx.toWallMs(v.endNs), durationNs: Math.max(0, Math.round(v.endNs - v.startNs)), process: v.process };
}

/** The transaction's main view: the client's when present (its timing is what users wait). */
export function primaryView(txn: Transaction): TransactionView {
  return (txn.client ?? txn.server)!;
}

export function buildDocument(txn: Transaction, ctx: DocumentContext): TxnDocument {
  const main = primaryView(txn);
  const t = main.tuple;
  const module = ctx.modules.get(main.protocol);
  if (!module) throw new Error(`no protocol module for ${main.protocol}`);
  const protoViews = [txn.client?.txn, txn.server?.txn].filter((v) => v !== undefined);
  const proto = module.documentFields(protoViews, { ip: t.serverIp, port: t.serverPort });
  const start = iso(ctx.toWallMs(main.startNs));
  const end = iso(ctx.toWallMs(main.endNs));
  const durationNs = Math.max(0, Math.round(main.endNs - main.startNs));

  const clientProcess = txn.client?.process;
  const serverProcess = txn.server?.process;
  // client/server are source/destination without the process (one literal each: no shape changes)
  const client: Record<string, unknown> = { ip: t.clientIp, port: t.clientPort, bytes: proto.requestBytes };
  const server: Record<string, unknown> = proto.domain
    ? { ip: t.serverIp, port: t.serverPort, bytes: proto.responseBytes, domain: proto.domain }
    : { ip: t.serverIp, port: t.serverPort, bytes: proto.responseBytes };
  const source: Record<string, unknown> = clientProcess
    ? { ip: t.clientIp, port: t.clientPort, bytes: proto.requestBytes, process: processDoc(clientProcess) }
    : { ip: t.clientIp, port: t.clientPort, bytes: proto.requestBytes };
  const destination: Record<string, unknown> = serverProcess
    ? proto.domain
      ? { ip: t.serverIp, port: t.serverPort, bytes: proto.responseBytes, domain: proto.domain, process: processDoc(serverProcess) }
      : { ip: t.serverIp, port: t.serverPort, bytes: proto.responseBytes, process: processDoc(serverProcess) }
    : { ...server };
  const community = flowCommunityId(t);
  const seen = [seenBy(txn.client, 'client'), seenBy(txn.server, 'server')].filter((v): v is string => v !== undefined);
  const id = transactionId({
    communityId: community,
    protocol: main.protocol,
    views: seen,
    requestSeq: main.requestSeq ?? txn.client?.requestSeq ?? txn.server?.requestSeq,
    startNs: main.startNs,
    timestamp: start,
  });
  // protocol fields that extend common objects (network.forwarded_ip, related.hosts, ...) are merged in
  const network: Record<string, unknown> = {
    transport: 'tcp',
    protocol: main.protocol,
    type: t.family === 6 ? 'ipv6' : 'ipv4',
    bytes: proto.requestBytes + proto.responseBytes,
    community_id: community,
  };
  const extraNetwork = proto.fields.network;
  const relatedIp = t.clientIp === t.serverIp ? [t.clientIp] : [t.clientIp, t.serverIp];
  const extraRelated = proto.fields.related;
  const mergeNetwork = extraNetwork !== null && typeof extraNetwork === 'object';
  const mergeRelated = extraRelated !== null && typeof extraRelated === 'object';
  const doc: TxnDocument = {
    '@timestamp': start,
    type: main.protocol,
    status: proto.status,
    ...proto.root,
    event: {
      id,
      kind: 'event',
      category: ['network'],
      type: ['connection', 'protocol'],
      dataset: main.protocol,
      start,
      end,
      duration: durationNs,
      outcome: proto.outcome,
      ...(proto.action ? { action: proto.action } : {}),
    },
    ...proto.fields,
    source,
    destination,
    client,
    server,
    network: mergeNetwork ? { ...network, ...(extraNetwork as object) } : network,
    related: mergeRelated ? { ip: relatedIp, ...(extraRelated as object) } : { ip: relatedIp },
    [BUILT]: (mergeNetwork ? 0 : OWN_NETWORK) | (mergeRelated && Object.hasOwn(extraRelated as object, 'ip') ? 0 : OWN_RELATED_IP),
    [FIELD_JSON]: module.fieldJson,
  };
  // process.* is the serving process when known (as Packetbeat prefers the destination)
  const owner = serverProcess ?? clientProcess;
  if (owner) doc.process = processDoc(owner);
  const containerId = serverProcess?.containerId ?? clientProcess?.containerId;
  if (containerId) doc.container = { id: containerId };
  // one view may have missed what the other saw: a complete exchange is not "unmatched"
  const clientNotes = txn.client?.txn.notes ?? [];
  const serverNotes = txn.server?.txn.notes ?? [];
  if (clientNotes.length + serverNotes.length > 0) {
    const notes = [...new Set([...clientNotes, ...serverNotes])].filter((n) => !proto.matched || !n.startsWith('Unmatched'));
    if (notes.length > 0) doc.error = { message: notes.length === 1 ? notes[0] : notes };
  }
  const ebpf: Record<string, unknown> = { views: seen };
  // no end could be named (packets of other hosts, sockets gone before /proc was read, replay)
  if (!clientProcess && !serverProcess) ebpf.unattributed = true;
  if (txn.server) ebpf.server_duration = Math.max(0, Math.round(txn.server.endNs - txn.server.startNs));
  if (txn.client) ebpf.client_duration = durationNs;
  doc.packetbeat_ebpf = ebpf;
  if (ctx.tags.length > 0) doc.tags = [...ctx.tags];
  const shared = staticsOf(ctx);
  doc.agent = shared.agent;
  doc.host = shared.host;
  doc.ecs = shared.ecs;
  if (ctx.keepViews !== false) {
    documentViews.set(doc, {
      client: txn.client && viewTiming(txn.client, ctx),
      server: txn.server && viewTiming(txn.server, ctx),
    });
  }
  return doc;
}

/**
 * A document's JSON text, the same as JSON.stringify(doc): for a document from
 * buildDocument, the parts it wrote itself are written as they are (times, ids,
 * addresses and constants need no escaping; process, agent, host and ecs are
 * shared, their text kept); the protocol's fields go to its module's fieldJson
 * (which knows their shape), or else through jsonValue. Any other document goes
 * to JSON.stringify. Measured: ~10% less time than
 * JSON.stringify on warm caches, 12% less agent CPU live at 2,000 PostgreSQL
 * transactions/s, where the agent's caches are cold (README: Benchmarks).
 */
export function documentJson(doc: TxnDocument): string {
  const built = (doc as { [BUILT]?: number })[BUILT];
  if (built === undefined) return JSON.stringify(doc);
  const fieldJson = (doc as { [FIELD_JSON]?: ProtocolModule['fieldJson'] })[FIELD_JSON];
  let out = '{';
  // in the document's own key order: the protocol's fields sit between the common ones
  for (const key in doc) {
    if (!Object.hasOwn(doc, key)) continue; // an enumerable key someone put on Object.prototype
    const v = doc[key];
    let text: string | undefined;
    switch (key) {
      case '@timestamp':
        text = '"' + (v as string) + '"';
        break;
      case 'event':
        text = eventJson(v as Record<string, unknown>);
        break;
      case 'source':
      case 'destination':
      case 'client':
      case 'server':
        text = endpointJson(v as Record<string, unknown>);
        break;
      case 'network':
        text = (built & OWN_NETWORK) !== 0 ? networkJson(v as Record<string, unknown>) : jsonValue(v);
        break;
      case 'related':
        text = (built & OWN_RELATED_IP) !== 0 ? relatedJson(v as Record<string, unknown>) : jsonValue(v);
        break;
      case 'packetbeat_ebpf':
        text = ebpfJson(v as Record<string, unknown>);
        break;
      case 'process':
      case 'agent':
      case 'host':
      case 'ecs':
        text = sharedJson(v);
        break;
      default:
        text = (fieldJson === undefined ? undefined : fieldJson(key, v)) ?? jsonValue(v);
    }
    if (text !== undefined) out += (out.length === 1 ? jsonKey(key) : jsonNextKey(key)) + text;
  }
  return out + '}';
}

// the fixed parts of buildDocument's objects, in its order (ids, times, addresses and protocol names need no escaping)
function eventJson(e: Record<string, unknown>): string {
  const action = e.action === undefined ? '' : ',"action":' + jsonString(e.action as string);
  return `{"id":"${e.id as string}","kind":"event","category":["network"],"type":["connection","protocol"],"dataset":"${e.dataset as string}","start":"${e.start as string}","end":"${e.end as string}","duration":${jsonNumber(e.duration as number)},"outcome":"${e.outcome as string}"${action}}`;
}

function endpointJson(p: Record<string, unknown>): string {
  const domain = p.domain === undefined ? '' : ',"domain":' + jsonString(p.domain as string);
  const process = p.process === undefined ? '' : ',"process":' + sharedJson(p.process);
  return `{"ip":"${p.ip as string}","port":${jsonNumber(p.port as number)},"bytes":${jsonNumber(p.bytes as number)}${domain}${process}}`;
}

function networkJson(n: Record<string, unknown>): string {
  return `{"transport":"tcp","protocol":"${n.protocol as string}","type":"${n.type as string}","bytes":${jsonNumber(n.bytes as number)},"community_id":"${n.community_id as string}"}`;
}

/** related.ip as buildDocument wrote it (addresses), then what the protocol added. */
function relatedJson(r: Record<string, unknown>): string {
  const ips = r.ip as string[];
  let out = ips.length === 1 ? `{"ip":["${ips[0]}"]` : `{"ip":["${ips[0]}","${ips[1]}"]`;
  for (const key in r) {
    if (key === 'ip' || !Object.hasOwn(r, key)) continue;
    const text = jsonValue(r[key]);
    if (text !== undefined) out += jsonNextKey(key) + text;
  }
  return out + '}';
}

function ebpfJson(e: Record<string, unknown>): string {
  const views = e.views as string[];
  let out = '{"views":' + (views.length === 2 ? `["${views[0]}","${views[1]}"]` : views.length === 1 ? `["${views[0]}"]` : '[]');
  if (e.unattributed !== undefined) out += ',"unattributed":true';
  if (e.server_duration !== undefined) out += ',"server_duration":' + jsonNumber(e.server_duration as number);
  if (e.client_duration !== undefined) out += ',"client_duration":' + jsonNumber(e.client_duration as number);
  return out + '}';
}
