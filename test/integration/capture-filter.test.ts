import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createEbpfSource } from '../../src/capture/ebpf-source';
import type { CaptureEvent } from '../../src/capture/events';
import { EventKind } from '../../src/capture/layout';
import { PROTOCOL_IDS } from '../../src/protocols/types';
import { kernelSkip } from '../helpers/agent';
import { startNodeServer, type RunningServer } from '../helpers/servers';

const PORT = 18190;
const skip = kernelSkip();

/** Capture while this process fetches from the server; return what the kernel sent. */
async function captureFetch(opts: { selfTgid: number; pids?: number[]; ports?: number[] }): Promise<{ events: CaptureEvent[]; counters: Record<string, number> }> {
  const events: CaptureEvent[] = [];
  const source = createEbpfSource({
    ports: (opts.ports ?? [PORT]).map((p) => [p, PROTOCOL_IDS.http]),
    pids: opts.pids ?? [],
    maxPayload: 4096,
    ringBytes: 1 << 22,
    wakeupBytes: 1 << 16,
    drainIntervalMs: 10,
    selfTgid: opts.selfTgid,
  });
  try {
    source.start({ onEvent: (e) => events.push({ ...e, payload: Buffer.from(e.payload) }), onBatchEnd: () => {} });
    const res = await fetch(`http://127.0.0.1:${PORT}/hello`, { headers: { connection: 'close' } });
    assert.equal(await res.text(), 'hello from node\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(source.flush(5000), 0, 'the ring buffer was emptied');
    return { events, counters: source.counters() };
  } finally {
    source.close();
  }
}

describe('kernel filters', { skip }, () => {
  let server: RunningServer;
  before(async () => {
    server = await startNodeServer(PORT);
  });
  after(async () => {
    await server?.stop();
  });

  test("the agent's own process is excluded in the kernel", async () => {
    const mine = await captureFetch({ selfTgid: process.pid });
    assert.ok(mine.events.some((e) => e.tgid === server.pid && e.kind === EventKind.DATA), 'server events are seen');
    assert.equal(mine.events.filter((e) => e.tgid === process.pid).length, 0, 'none of our own');
    // the same traffic with another pid excluded: our own events do show up
    const other = await captureFetch({ selfTgid: 1 });
    const own = other.events.filter((e) => e.tgid === process.pid);
    assert.ok(own.some((e) => e.kind === EventKind.CONNECT), 'own connect seen when not excluded');
    assert.ok(own.some((e) => e.kind === EventKind.DATA && e.payload.toString('latin1').startsWith('GET /hello HTTP/1.1')));
  });

  test('the pid filter keeps only the listed processes', async () => {
    const { events } = await captureFetch({ selfTgid: 1, pids: [server.pid] });
    const pids = new Set(events.filter((e) => e.kind !== EventKind.EXEC).map((e) => e.tgid));
    assert.deepEqual([...pids], [server.pid]);
  });

  test('the port filter drops other ports and counts them', async () => {
    const { events, counters } = await captureFetch({ selfTgid: 1, ports: [PORT + 1] });
    assert.equal(events.filter((e) => e.kind === EventKind.DATA && (e.localPort === PORT || e.remotePort === PORT)).length, 0);
    assert.ok(counters.filtered > 0, JSON.stringify(counters));
  });

  test('events carry the 4-tuple, sequence numbers and process identity', async () => {
    const { events, counters } = await captureFetch({ selfTgid: 1 });
    const req = events.find((e) => e.kind === EventKind.DATA && e.tgid === process.pid && e.dir === 0);
    const got = events.find((e) => e.kind === EventKind.DATA && e.tgid === server.pid && e.dir === 1);
    assert.ok(req && got);
    assert.equal(req.remotePort, PORT);
    assert.equal(got.localPort, PORT);
    assert.equal(got.remotePort, req.localPort);
    assert.equal(req.localIp, '127.0.0.1');
    assert.equal(got.seq, req.seq, 'both ends see the same TCP sequence number for the request');
    assert.equal(req.comm, 'node');
    assert.equal(req.ppid, process.ppid);
    assert.ok(req.sockId !== got.sockId);
    assert.ok(got.tsNs >= got.enterNs);
    assert.ok(counters.events >= events.length);
    assert.equal(counters.ringbufDrops, 0);
  });

  test('a shadowed socket: the kernel stops copying its payload but keeps lengths and positions', async () => {
    const events: CaptureEvent[] = [];
    const source = createEbpfSource({
      ports: [[PORT, PROTOCOL_IDS.http]],
      pids: [],
      maxPayload: 4096,
      ringBytes: 1 << 22,
      wakeupBytes: 1 << 16,
      drainIntervalMs: 5,
      selfTgid: 1,
    });
    const sock = net.connect(PORT, '127.0.0.1');
    try {
      source.start({ onEvent: (e) => events.push({ ...e, payload: Buffer.from(e.payload) }), onBatchEnd: () => {} });
      await once(sock, 'connect');
      const exchange = async () => {
        sock.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
        let got = '';
        while (!got.includes('hello from node\n')) got += (await once(sock, 'data'))[0].toString();
      };
      await exchange();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(source.flush(5000), 0, 'the ring buffer was emptied');
      const serverSock = events.find((e) => e.kind === EventKind.DATA && e.tgid === server.pid && e.dir === 1)?.sockId;
      assert.ok(serverSock, 'the server socket was seen');
      const before = events.length;
      source.setVerdicts!([[serverSock, 'shadow']]);
      await exchange();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(source.flush(5000), 0, 'the ring buffer was emptied');
      const after = events.slice(before).filter((e) => e.kind === EventKind.DATA);
      const srv = after.filter((e) => e.sockId === serverSock);
      const cli = after.filter((e) => e.tgid === process.pid);
      assert.ok(srv.length >= 2, 'the server still reports its reads and writes');
      for (const e of srv) {
        assert.ok(e.len > 0);
        assert.equal(e.payload.length, 0, 'no payload copied for the shadowed socket');
      }
      assert.ok(cli.some((e) => e.payload.toString('latin1').startsWith('GET /hello')), 'the client end keeps its payload');
      // left out on purpose, not cut: the truncation counter stays at zero (small messages, 4 KiB heads)
      assert.equal(source.counters().truncated, 0);
      // positions agree: the server's read of the request starts where the client's write did
      const w = cli.find((e) => e.dir === 0)!;
      assert.equal(srv.find((e) => e.dir === 1)?.seq, w.seq);
    } finally {
      sock.destroy();
      source.close();
    }
  });
});
