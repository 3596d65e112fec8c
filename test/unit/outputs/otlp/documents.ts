/**
 * Real transaction documents for the OTLP tests: the recorded HTTP session
 * (nginx, node, curl and fetch on loopback, both ends traced) replayed through
 * the pipeline, and our pcaps of real database servers replayed from the wire.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPipeline } from '../../../../src/agent/pipeline';
import { replayCapture } from '../../../../src/agent/replay';
import { createRecordingSource, readRecording } from '../../../../src/capture/recording';
import { validateConfig } from '../../../../src/config';
import { createProcessCache } from '../../../../src/conn/process-info';
import type { Output } from '../../../../src/outputs/types';
import type { TxnDocument } from '../../../../src/publish/document';
import { createLogger } from '../../../../src/util/logger';

const FIXTURES = path.resolve(__dirname, '../../../../../test/fixtures');

export type Doc = Record<string, any>;

function collector(docs: TxnDocument[]): Output {
  return { name: 'collect', publish: (d) => docs.push(...d), flush: async () => {}, stats: () => ({ published: docs.length, dropped: 0, queued: 0 }) };
}

/** The recorded HTTP session's documents (12 transactions, each seen by client and server). */
export function recordedHttpDocuments(config: Record<string, unknown> = {}, outputs: Output[] = []): Doc[] {
  const recording = readRecording(path.join(FIXTURES, 'http-loopback/events.pberec'));
  const docs: TxnDocument[] = [];
  const emptyProc = fs.mkdtempSync(path.join(os.tmpdir(), 'pbe-noproc-'));
  try {
    const pipeline = createPipeline({
      config: validateConfig({ protocols: { http: { ports: [18180, 18181] } }, join_window_ms: 300, ...config }, 'test'),
      outputs: [collector(docs), ...outputs],
      // the recorded processes are gone: names from the kernel, paths and args from exec events
      processes: createProcessCache({ procRoot: emptyProc }),
      logger: createLogger('silent'),
      toWallMs: (ns) => recording.header.wallMs + (ns - recording.header.monoNs) / 1e6,
    });
    createRecordingSource(recording).start(pipeline);
    pipeline.flush();
  } finally {
    fs.rmSync(emptyProc, { recursive: true });
  }
  return docs as Doc[];
}

/** A pcap of ours (test/fixtures/pcap) replayed: wire views, no processes. */
export async function pcapDocuments(name: 'http' | 'pgsql' | 'mysql' | 'redis', outputs: Output[] = []): Promise<Doc[]> {
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, `pcap/${name}.expected.json`), 'utf8')) as { port: number };
  const docs: TxnDocument[] = [];
  const config = validateConfig({ protocols: { [name]: { ports: [expected.port] } }, infer_protocols: false }, name);
  await replayCapture(path.join(FIXTURES, `pcap/${name}.pcap`), config, [collector(docs), ...outputs], createLogger('silent'));
  return docs as Doc[];
}

/** The live agent's documents of the recorded session, as it printed them (JSON: no linked views). */
export function liveHttpDocuments(): Doc[] {
  return fs
    .readFileSync(path.join(FIXTURES, 'http-loopback/live.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Doc);
}
